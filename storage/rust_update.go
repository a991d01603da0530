//go:build rust

package storage

/*
#cgo noescape mantis_incr_by_begin
#cgo nocallback mantis_incr_by_begin
#cgo noescape mantis_append_begin
#cgo nocallback mantis_append_begin
#include "mantisdb.h"
*/
import "C"

import (
	"context"
	"runtime"
)

// Read-modify-writes on the Rust engine: the core evaluates them under its
// log's append lock against the newest value every earlier commit left and
// logs the result as one commit (rust-core/src/update.rs), so an INCR is
// one call plus the wait for its group commit, shared with every other
// writer's.

// IncrBy implements Updater.
func (e *RustEngine) IncrBy(ctx context.Context, key string, delta int64) (int64, error) {
	db, err := e.acquire()
	if err != nil {
		return 0, err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	var res C.int64_t
	var outcome C.uint8_t
	var ticket C.uint64_t
	var cerr *C.MantisError
	st := C.mantis_incr_by_begin(db, kp, kl, C.int64_t(delta), &res, &outcome, &ticket, &cerr)
	runtime.KeepAlive(key)
	if err := e.finishUpdate(ctx, db, st, cerr, outcome, ticket); err != nil {
		return 0, err
	}
	return int64(res), nil
}

// Append implements Updater.
func (e *RustEngine) Append(ctx context.Context, key, suffix string, maxLen int) (int, error) {
	db, err := e.acquire()
	if err != nil {
		return 0, err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	sp, sl := ptr(suffix)
	var n C.int64_t
	var outcome C.uint8_t
	var ticket C.uint64_t
	var cerr *C.MantisError
	st := C.mantis_append_begin(db, kp, kl, sp, sl, C.uint64_t(max(maxLen, 0)), &n, &outcome, &ticket, &cerr)
	runtime.KeepAlive(key)
	runtime.KeepAlive(suffix)
	if err := e.finishUpdate(ctx, db, st, cerr, outcome, ticket); err != nil {
		return 0, err
	}
	return int(n), nil
}

// finishUpdate turns a begun update's status and outcome into an error, or
// waits for its commit to be as durable as the engine's sync mode promises.
func (e *RustEngine) finishUpdate(ctx context.Context, db *C.MantisDb, st C.MantisStatus, cerr *C.MantisError, outcome C.uint8_t, ticket C.uint64_t) error {
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	if err := updateRefusal(outcome); err != nil {
		return err
	}
	return e.ackCommit(ctx, db, uint64(ticket))
}

// updateRefusal is the error of a refused update's outcome code, nil when
// the update committed.
func updateRefusal(outcome C.uint8_t) error {
	switch outcome {
	case C.MANTIS_UPDATE_DONE:
		return nil
	case C.MANTIS_UPDATE_NOT_INTEGER:
		return ErrNotInteger
	case C.MANTIS_UPDATE_OVERFLOW:
		return ErrIncrOverflow
	case C.MANTIS_UPDATE_TOO_LONG:
		return ErrTooLong
	default:
		return ErrInternal
	}
}
