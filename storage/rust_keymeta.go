//go:build rust

package storage

/*
#include "mantisdb.h"
*/
import "C"

import (
	"context"
	"runtime"
	"time"
	"unsafe"
)

// Key metadata on the Rust engine: the core keeps, per version, the
// sequence number of the commit that wrote it (the Version) and its
// absolute expiry in Unix milliseconds, and answers both with the value.

// GetWithMeta implements StorageEngine.
func (e *RustEngine) GetWithMeta(_ context.Context, key string) (string, KeyMeta, error) {
	db, err := e.acquire()
	if err != nil {
		return "", KeyMeta{}, err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	var out C.MantisBuf
	var seq C.uint64_t
	var exp C.int64_t
	var cerr *C.MantisError
	st := C.mantis_get_meta(db, kp, kl, &out, &seq, &exp, &cerr)
	runtime.KeepAlive(key)
	return metaAnswer(st, &out, seq, exp, cerr)
}

// GetWithMeta implements Transaction.
func (x *rustTxn) GetWithMeta(key string) (string, KeyMeta, error) {
	var (
		val  string
		meta KeyMeta
	)
	err := x.use(func(t *C.MantisTxn) error {
		kp, kl := ptr(key)
		var out C.MantisBuf
		var seq C.uint64_t
		var exp C.int64_t
		var cerr *C.MantisError
		st := C.mantis_txn_get_meta(t, kp, kl, &out, &seq, &exp, &cerr)
		runtime.KeepAlive(key)
		var err error
		val, meta, err = metaAnswer(st, &out, seq, exp, cerr)
		return err
	})
	return val, meta, err
}

// PutWithExpiry implements Transaction.
func (x *rustTxn) PutWithExpiry(key, value string, expireAt time.Time) error {
	if expireAt.IsZero() {
		return x.Put(key, value)
	}
	return x.use(func(t *C.MantisTxn) error {
		kp, kl := ptr(key)
		vp, vl := ptr(value)
		var cerr *C.MantisError
		st := C.mantis_txn_put_expiry(t, kp, kl, vp, vl, C.int64_t(expiryMs(expireAt)), &cerr)
		runtime.KeepAlive(key)
		runtime.KeepAlive(value)
		if st != C.MANTIS_OK {
			return statusError(st, cerr)
		}
		return nil
	})
}

// metaAnswer turns the answer of mantis_get_meta or mantis_txn_get_meta
// into GetWithMeta's results, freeing the value buffer.
func metaAnswer(st C.MantisStatus, out *C.MantisBuf, seq C.uint64_t, exp C.int64_t, cerr *C.MantisError) (string, KeyMeta, error) {
	switch st {
	case C.MANTIS_OK:
		v := C.GoStringN((*C.char)(unsafe.Pointer(out.data)), C.int(out.len))
		C.mantis_buf_free(out)
		meta := KeyMeta{Version: uint64(seq)}
		if exp != 0 {
			meta.ExpiresAt = time.UnixMilli(int64(exp))
		}
		return v, meta, nil
	case C.MANTIS_NOT_FOUND:
		return "", KeyMeta{}, ErrNotFound
	default:
		return "", KeyMeta{}, statusError(st, cerr)
	}
}
