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
	// The handle is freed however this ends.
	defer func() {
		x.cleanup.Stop()
		C.mantis_txn_free(x.t)
		x.t = nil
	}()
	var err error
	if _, aerr := x.engine.acquire(); aerr != nil {
		// Rolling back needs no engine: the writes were only buffered.
		if commit {
			err = aerr
		}
	} else {
		var cerr *C.MantisError
		var st C.MantisStatus
		if commit {
			st = C.mantis_txn_commit(x.t, &cerr)
		} else {
			st = C.mantis_txn_rollback(x.t, &cerr)
		}
		x.engine.mu.RUnlock()
		if st != C.MANTIS_OK {
			err = statusError(st, cerr)
		}
	}
	return err
}

func (x *rustTxn) Commit() error   { return x.finish(true) }
func (x *rustTxn) Rollback() error { return x.finish(false) }
