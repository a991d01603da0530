//go:build rust

package storage

/*
#include "mantisdb.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// BeginTransaction implements StorageEngine.
func (e *RustEngine) BeginTransaction(_ context.Context) (Transaction, error) {
	db, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer e.mu.RUnlock()
	var t *C.MantisTxn
	var cerr *C.MantisError
	if st := C.mantis_txn_begin(db, &t, &cerr); st != C.MANTIS_OK {
		return nil, statusError(st, cerr)
	}
	rt := &rustTxn{engine: e, t: t}
	// Leak backstop for a transaction dropped without Commit or Rollback.
	rt.cleanup = runtime.AddCleanup(rt, func(h *C.MantisTxn) { C.mantis_txn_free(h) }, t)
	return rt, nil
}

type rustTxn struct {
	engine  *RustEngine
	mu      sync.Mutex
	t       *C.MantisTxn
	cleanup runtime.Cleanup
	done    bool
}

// use runs f with the transaction handle unless it is finished or the engine closed.
func (x *rustTxn) use(f func(t *C.MantisTxn) error) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done {
		return fmt.Errorf("%w", ErrTxnDone)
	}
	if _, err := x.engine.acquire(); err != nil {
		return err
	}
	defer x.engine.mu.RUnlock()
	return f(x.t)
}

func (x *rustTxn) Put(key, value string) error {
	return x.use(func(t *C.MantisTxn) error {
		kp, kl := ptr(key)
		vp, vl := ptr(value)
		var cerr *C.MantisError
		st := C.mantis_txn_put(t, kp, kl, vp, vl, &cerr)
		runtime.KeepAlive(key)
		runtime.KeepAlive(value)
		if st != C.MANTIS_OK {
			return statusError(st, cerr)
		}
		return nil
	})
}

func (x *rustTxn) Delete(key string) error {
	return x.use(func(t *C.MantisTxn) error {
		kp, kl := ptr(key)
		var cerr *C.MantisError
		st := C.mantis_txn_delete(t, kp, kl, &cerr)
		runtime.KeepAlive(key)
		if st != C.MANTIS_OK {
			return statusError(st, cerr)
		}
		return nil
	})
}

func (x *rustTxn) Get(key string) (string, error) {
	var val string
	err := x.use(func(t *C.MantisTxn) error {
		kp, kl := ptr(key)
		var out C.MantisBuf
		var cerr *C.MantisError
		st := C.mantis_txn_get(t, kp, kl, &out, &cerr)
		runtime.KeepAlive(key)
		switch st {
		case C.MANTIS_OK:
			val = C.GoStringN((*C.char)(unsafe.Pointer(out.data)), C.int(out.len))
			C.mantis_buf_free(&out)
			return nil
		case C.MANTIS_NOT_FOUND:
			return ErrNotFound
		default:
			return statusError(st, cerr)
		}
	})
	return val, err
}

// finish ends the transaction with commit or rollback and frees the handle.
//
// A commit is made in two halves, as a put is: mantis_txn_commit_begin
// validates and logs it and returns a ticket at once, and the goroutine
// then waits for its group commit on the Go side (waitCommit), so waiting
// for durability holds no OS thread per transaction. A commit that lost to
// one still in flight waits the same way until that one is visible before
// it reports the conflict, so a retry reads the value it lost to.
func (x *rustTxn) finish(commit bool) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done {
		if commit {
			return fmt.Errorf("%w", ErrTxnDone)
		}
		return nil
	}
	x.done = true
	db, err := x.engine.acquire()
	if err != nil {
		x.free()
		// Rolling back needs no engine: the writes were only buffered.
		if commit {
			return err
		}
		return nil
	}
	defer x.engine.mu.RUnlock()
	var cerr *C.MantisError
	if !commit {
		st := C.mantis_txn_rollback(x.t, &cerr)
		x.free()
		if st != C.MANTIS_OK {
			return statusError(st, cerr)
		}
		return nil
	}
	// The handle is freed only after the wait: while it is open, the
	// engine keeps tracking the keys of every commit, so a transaction
	// beginning meanwhile reads at the visible point and validates against
	// the commits still in flight instead of waiting for their sync.
	defer x.free()
	var ticket C.uint64_t
	st := C.mantis_txn_commit_begin(x.t, &ticket, &cerr)
	if st != C.MANTIS_OK {
		err := statusError(st, cerr)
		if st == C.MANTIS_CONFLICT && ticket != 0 {
			// Its own outcome is not this transaction's: the answer is
			// the conflict either way.
			_ = x.engine.waitCommit(db, uint64(ticket))
		}
		return err
	}
	return x.engine.waitCommit(db, uint64(ticket))
}

// free releases the handle.
func (x *rustTxn) free() {
	x.cleanup.Stop()
	C.mantis_txn_free(x.t)
	x.t = nil
}

func (x *rustTxn) Commit() error   { return x.finish(true) }
func (x *rustTxn) Rollback() error { return x.finish(false) }
