//go:build rust

package storage

/*
#cgo CFLAGS: -I${SRCDIR}/../rust-core/include
#cgo linux LDFLAGS: ${SRCDIR}/../rust-core/target/release/libmantisdb_core.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#cgo darwin LDFLAGS: ${SRCDIR}/../rust-core/target/release/libmantisdb_core.a -liconv -lSystem -lc -lm
#cgo noescape mantis_put
#cgo nocallback mantis_put
#cgo noescape mantis_put_ttl
#cgo nocallback mantis_put_ttl
#cgo noescape mantis_get_into
#cgo nocallback mantis_get_into
#cgo noescape mantis_delete
#cgo nocallback mantis_delete
#cgo noescape mantis_write_batch
#cgo nocallback mantis_write_batch
#cgo noescape mantis_multi_get
#cgo nocallback mantis_multi_get
#cgo noescape mantis_iter_next_batch
#cgo nocallback mantis_iter_next_batch
#include "mantisdb.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// DefaultEngine is the engine NewDefaultStorageEngine picks: "rust" in
// builds with the Rust core.
const DefaultEngine = "rust"

// RustAvailable reports whether this binary links the Rust engine.
const RustAvailable = true

// getStackBuf is the size of the on-stack buffer Get reads into first; a
// larger value costs one more call.
const getStackBuf = 512

// RustEngine is the durable engine: the Rust core (rust-core/) behind its C
// ABI, linked statically. Safe for concurrent use.
type RustEngine struct {
	cfg Config
	// mu guards db against Close: calls hold it shared, Close exclusively.
	mu     sync.RWMutex
	db     *C.MantisDb
	closed bool
	opened bool
}

func newRustEngine(cfg Config) (StorageEngine, error) {
	return NewRustEngine(cfg), nil
}

// NewRustEngine returns the Rust engine with cfg (zero fields take their
// defaults), not yet initialised.
func NewRustEngine(cfg Config) *RustEngine {
	return &RustEngine{cfg: cfg.withDefaults()}
}

// Name implements StorageEngine.
func (e *RustEngine) Name() string { return "rust" }

// rustError is an engine failure: the sentinel for errors.Is and the core's message.
type rustError struct {
	sentinel error
	msg      string
}

func (e *rustError) Error() string { return e.msg }
func (e *rustError) Unwrap() error { return e.sentinel }

// statusSentinels gives the sentinel each failure status wraps; any other
// status (MANTIS_IO, MANTIS_PANIC) is reported with its number.
var statusSentinels = map[C.MantisStatus]error{
	C.MANTIS_NOT_FOUND:        ErrNotFound,
	C.MANTIS_CONFLICT:         ErrConflict,
	C.MANTIS_CLOSED:           ErrClosed,
	C.MANTIS_INVALID_KEY:      ErrInvalidKey,
	C.MANTIS_VALUE_TOO_LARGE:  ErrValueTooLarge,
	C.MANTIS_CORRUPTION:       ErrCorruption,
	C.MANTIS_NO_SPACE:         ErrNoSpace,
	C.MANTIS_POISONED:         ErrWritesStopped,
	C.MANTIS_LOCKED:           ErrLocked,
	C.MANTIS_INVALID_ARGUMENT: ErrInvalidArgument,
	C.MANTIS_NULL_PARAMETER:   ErrInvalidArgument,
	C.MANTIS_BUFFER_TOO_SMALL: ErrInvalidArgument,
}

// statusError turns a status and the error object of the same call into an
// error, freeing the object.
func statusError(st C.MantisStatus, cerr *C.MantisError) error {
	msg := ""
	if cerr != nil {
		msg = C.GoStringN(cerr.message, C.int(cerr.message_len))
		C.mantis_error_free(cerr)
	}
	sentinel, ok := statusSentinels[st]
	if !ok {
		sentinel = fmt.Errorf("mantisdb status %d", int(st))
	}
	if msg == "" {
		msg = sentinel.Error()
	}
	return &rustError{sentinel: sentinel, msg: msg}
}

// ptr returns a C view of a Go string's bytes, without copying.
// SAFETY: the C side only reads the bytes during the call (noescape on hot
// calls; none of the library's functions keep a pointer after returning),
// and a string's bytes are immutable and contain no Go pointers, which the
// cgo pointer rules allow passing.
func ptr(s string) (*C.uint8_t, C.size_t) {
	return (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// bptr is ptr for byte slices (batch and key buffers built in Go).
func bptr(b []byte) (*C.uint8_t, C.size_t) {
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b))
}

// acquire takes the shared lock and returns the handle, or ErrClosed.
func (e *RustEngine) acquire() (*C.MantisDb, error) {
	e.mu.RLock()
	if e.closed || e.db == nil {
		e.mu.RUnlock()
		return nil, fmt.Errorf("%w", ErrClosed)
	}
	return e.db, nil
}

func (e *RustEngine) options() C.MantisOptions {
	o := C.mantis_options_default()
	switch e.cfg.Sync {
	case SyncInterval:
		o.sync = 1
		o.sync_interval_ms = C.uint64_t(e.cfg.SyncInterval.Milliseconds())
	case SyncNever:
		o.sync = 2
	default:
		o.sync = 0
	}
	o.cache_bytes = C.uint64_t(e.cfg.CacheSize)
	o.segment_size = C.uint64_t(e.cfg.SegmentSize)
	o.max_value_len = C.uint64_t(e.cfg.MaxValueSize)
	return o
}

// Init implements StorageEngine.
func (e *RustEngine) Init(dataDir string) error {
	if dataDir == "" {
		dataDir = e.cfg.DataDir
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("%w: Init after Close", ErrClosed)
	}
	if e.opened {
		return fmt.Errorf("%w: engine already initialised", ErrInvalidArgument)
	}
	if err := e.cfg.Validate(); err != nil {
		return err
	}
	opts := e.options()
	p, n := ptr(dataDir)
	var cerr *C.MantisError
	var db *C.MantisDb
	st := C.mantis_open(p, n, &opts, &db, &cerr)
	runtime.KeepAlive(dataDir)
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	e.db, e.opened = db, true
	return nil
}

// Close implements StorageEngine: syncs, closes and frees the handle.
func (e *RustEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.db == nil {
		e.closed = true
		return nil
	}
	e.closed = true
	var cerr *C.MantisError
	st := C.mantis_close(e.db, &cerr)
	C.mantis_db_free(e.db)
	e.db = nil
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// Put implements StorageEngine.
func (e *RustEngine) Put(_ context.Context, key, value string) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	vp, vl := ptr(value)
	var cerr *C.MantisError
	if st := C.mantis_put(db, kp, kl, vp, vl, &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// PutWithTTL implements StorageEngine.
func (e *RustEngine) PutWithTTL(_ context.Context, key, value string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	vp, vl := ptr(value)
	var cerr *C.MantisError
	if st := C.mantis_put_ttl(db, kp, kl, vp, vl, C.uint64_t(ttl.Milliseconds()), &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// Get implements StorageEngine. It reads into a stack buffer first, so a
// small value costs one call and one allocation (the returned string).
func (e *RustEngine) Get(_ context.Context, key string) (string, error) {
	db, err := e.acquire()
	if err != nil {
		return "", err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	var stack [getStackBuf]byte
	var n C.size_t
	var cerr *C.MantisError
	st := C.mantis_get_into(db, kp, kl, (*C.uint8_t)(unsafe.Pointer(&stack[0])), getStackBuf, &n, &cerr)
	switch st {
	case C.MANTIS_OK:
		return string(stack[:n]), nil
	case C.MANTIS_NOT_FOUND:
		return "", fmt.Errorf("%w", ErrNotFound)
	case C.MANTIS_BUFFER_TOO_SMALL:
	default:
		return "", statusError(st, cerr)
	}
	// Larger than the stack buffer: read into an exact-size allocation that
	// becomes the string. A concurrent overwrite may change the size; retry.
	for {
		buf := make([]byte, int(n))
		need := n
		st = C.mantis_get_into(db, kp, kl, (*C.uint8_t)(unsafe.SliceData(buf)), need, &n, &cerr)
		switch st {
		case C.MANTIS_OK:
			// SAFETY: buf is not referenced anywhere else and never written again.
			return unsafe.String(unsafe.SliceData(buf), int(n)), nil
		case C.MANTIS_NOT_FOUND:
			return "", fmt.Errorf("%w", ErrNotFound)
		case C.MANTIS_BUFFER_TOO_SMALL:
			continue
		default:
			return "", statusError(st, cerr)
		}
	}
}

// Delete implements StorageEngine.
func (e *RustEngine) Delete(_ context.Context, key string) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	var cerr *C.MantisError
	if st := C.mantis_delete(db, kp, kl, &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// appendOp encodes one batch op in the format of mantis_write_batch.
func appendOp(buf []byte, kind byte, key, value string, ttl time.Duration) []byte {
	buf = append(buf, kind)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(key)))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(value)))
	ms := uint64(0)
	if ttl > 0 {
		ms = uint64(ttl.Milliseconds())
	}
	buf = binary.LittleEndian.AppendUint64(buf, ms)
	buf = append(buf, key...)
	return append(buf, value...)
}

// writeBatch sends a whole batch in one call.
func (e *RustEngine) writeBatch(buf []byte, count int) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	p, n := bptr(buf)
	var cerr *C.MantisError
	st := C.mantis_write_batch(db, p, n, C.size_t(count), &cerr)
	runtime.KeepAlive(buf)
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// checkOps validates ops in Go so a bad op is reported with the same words
// by both engines, before anything is encoded.
func (e *RustEngine) checkOps(ops []BatchOp) error {
	for _, op := range ops {
		if err := checkKey(op.Key); err != nil {
			return err
		}
		if op.Kind == OpPut {
			if err := checkValue(op.Value, e.cfg.MaxValueSize); err != nil {
				return err
			}
			if op.TTL != 0 {
				if err := checkTTL(op.TTL); err != nil {
					return err
				}
			}
		} else if op.Kind != OpDelete {
			return fmt.Errorf("%w: unknown op kind %d", ErrInvalidArgument, op.Kind)
		}
	}
	return nil
}

// Write implements StorageEngine.
func (e *RustEngine) Write(_ context.Context, ops []BatchOp) error {
	if err := e.checkOps(ops); err != nil {
		return err
	}
	size := 0
	for _, op := range ops {
		size += 17 + len(op.Key) + len(op.Value)
	}
	buf := make([]byte, 0, size)
	for _, op := range ops {
		kind := byte(0)
		value := op.Value
		if op.Kind == OpDelete {
			kind, value = 1, ""
		}
		buf = appendOp(buf, kind, op.Key, value, op.TTL)
	}
	return e.writeBatch(buf, len(ops))
}

// BatchPut implements StorageEngine.
func (e *RustEngine) BatchPut(ctx context.Context, kvs map[string]string) error {
	ops := make([]BatchOp, 0, len(kvs))
	for k, v := range kvs {
		ops = append(ops, BatchOp{Kind: OpPut, Key: k, Value: v})
	}
	return e.Write(ctx, ops)
}

// BatchDelete implements StorageEngine.
func (e *RustEngine) BatchDelete(ctx context.Context, keys []string) error {
	ops := make([]BatchOp, len(keys))
	for i, k := range keys {
		ops[i] = BatchOp{Kind: OpDelete, Key: k}
	}
	return e.Write(ctx, ops)
}

// BatchGet implements StorageEngine: one call, one snapshot.
func (e *RustEngine) BatchGet(_ context.Context, keys []string) (map[string]string, error) {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
	}
	size := 0
	for _, k := range keys {
		size += 4 + len(k)
	}
	kb := make([]byte, 0, size)
	for _, k := range keys {
		kb = binary.LittleEndian.AppendUint32(kb, uint32(len(k)))
		kb = append(kb, k...)
	}
	db, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer e.mu.RUnlock()
	p, n := bptr(kb)
	var out C.MantisBuf
	var cerr *C.MantisError
	st := C.mantis_multi_get(db, p, n, C.size_t(len(keys)), &out, &cerr)
	runtime.KeepAlive(kb)
	if st != C.MANTIS_OK {
		return nil, statusError(st, cerr)
	}
	data := C.GoBytes(unsafe.Pointer(out.data), C.int(out.len))
	C.mantis_buf_free(&out)
	res := make(map[string]string, len(keys))
	at := 0
	for _, k := range keys {
		if at+5 > len(data) {
			return nil, fmt.Errorf("%w: short multi-get answer", ErrCorruption)
		}
		found := data[at] == 1
		l := int(binary.LittleEndian.Uint32(data[at+1:]))
		at += 5
		if at+l > len(data) {
			return nil, fmt.Errorf("%w: short multi-get answer", ErrCorruption)
		}
		if found {
			res[k] = string(data[at : at+l])
		}
		at += l
	}
	return res, nil
}

// NewIterator implements StorageEngine.
func (e *RustEngine) NewIterator(_ context.Context, prefix string) (Iterator, error) {
	return e.newIter(prefix, "", true)
}

// NewRangeIterator implements StorageEngine.
func (e *RustEngine) NewRangeIterator(_ context.Context, start, end string) (Iterator, error) {
	return e.newIter(start, end, false)
}

func (e *RustEngine) newIter(start, end string, prefix bool) (Iterator, error) {
	db, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer e.mu.RUnlock()
	sp, sl := ptr(start)
	ep, el := ptr(end)
	var it *C.MantisIter
	var cerr *C.MantisError
	st := C.mantis_iter_new(db, sp, sl, ep, el, C.bool(prefix), &it, &cerr)
	runtime.KeepAlive(start)
	runtime.KeepAlive(end)
	if st != C.MANTIS_OK {
		return nil, statusError(st, cerr)
	}
	ri := &rustIterator{it: it}
	// A leak backstop only: Close frees the handle and stops it; it catches
	// an iterator dropped without Close.
	ri.cleanup = runtime.AddCleanup(ri, func(h *C.MantisIter) { C.mantis_iter_free(h) }, it)
	return ri, nil
}

// Pairs fetched per crossing: the first batch is small, so a scan that
// stops early (a page, a limit) does not load values it never reads; each
// next batch doubles, up to the maximum, so a long scan crosses rarely.
// The byte budget bounds one batch whatever its count.
const (
	iterFirstBatchItems = 16
	iterMaxBatchItems   = 256
	iterBatchBytes      = 256 << 10
)

type rustIterator struct {
	mu         sync.Mutex
	it         *C.MantisIter
	cleanup    runtime.Cleanup
	batch      []byte
	at         int
	left       int
	nextItems  int // pairs the next fetch asks for
	key, value string
	err        error
	done       bool
}

func (r *rustIterator) Next() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done || r.it == nil {
		return false
	}
	if r.left == 0 && !r.fetch() {
		return false
	}
	b := r.batch[r.at:]
	kl := int(binary.LittleEndian.Uint32(b))
	vl := int(binary.LittleEndian.Uint32(b[4:]))
	// SAFETY: views into r.batch, which is never written after fetch; the
	// strings keep the batch alive on their own once the next one replaces it.
	r.key, r.value = view(b[8:8+kl]), view(b[8+kl:8+kl+vl])
	r.at += 8 + kl + vl
	r.left--
	return true
}

// view is a string over b without copying; b must never change afterwards.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// fetch copies the next batch of pairs out of the library in one call.
func (r *rustIterator) fetch() bool {
	var out C.MantisBuf
	var n C.size_t
	var cerr *C.MantisError
	if r.nextItems == 0 {
		r.nextItems = iterFirstBatchItems
	}
	st := C.mantis_iter_next_batch(r.it, C.size_t(r.nextItems), iterBatchBytes, &out, &n, &cerr)
	r.nextItems = min(2*r.nextItems, iterMaxBatchItems)
	if st != C.MANTIS_OK {
		r.err, r.done = statusError(st, cerr), true
		return false
	}
	if n == 0 {
		C.mantis_buf_free(&out)
		r.done = true
		return false
	}
	r.batch = C.GoBytes(unsafe.Pointer(out.data), C.int(out.len))
	C.mantis_buf_free(&out)
	r.at, r.left = 0, int(n)
	return true
}

func (r *rustIterator) Key() string   { return r.key }
func (r *rustIterator) Value() string { return r.value }

func (r *rustIterator) Error() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *rustIterator) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.it != nil {
		r.cleanup.Stop()
		C.mantis_iter_free(r.it)
		r.it = nil
	}
	r.done = true
	return nil
}

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
	if err := checkKey(key); err != nil {
		return err
	}
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
	if err := checkKey(key); err != nil {
		return err
	}
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
	if err := checkKey(key); err != nil {
		return "", err
	}
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
			return fmt.Errorf("%w", ErrNotFound)
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

// call runs one library call with the database handle under the shared
// lock and turns a failed status into an error. For calls off the hot path:
// the hot ones (Put, Get, Delete) spell it out so nothing escapes to the heap.
func (e *RustEngine) call(f func(db *C.MantisDb, cerr **C.MantisError) C.MantisStatus) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	var cerr *C.MantisError
	if st := f(db, &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// Sync implements StorageEngine.
func (e *RustEngine) Sync(_ context.Context) error {
	return e.call(func(db *C.MantisDb, cerr **C.MantisError) C.MantisStatus {
		return C.mantis_sync(db, cerr)
	})
}

// Compact rewrites segments holding dead data now (see the core's Db::compact).
func (e *RustEngine) Compact(_ context.Context) error {
	return e.call(func(db *C.MantisDb, cerr **C.MantisError) C.MantisStatus {
		return C.mantis_compact(db, cerr)
	})
}

// Checkpoint writes a consistent copy of the database into dir (created if
// missing; must be empty), while reads and writes go on.
func (e *RustEngine) Checkpoint(_ context.Context, dir string) error {
	return e.call(func(db *C.MantisDb, cerr **C.MantisError) C.MantisStatus {
		p, n := ptr(dir)
		st := C.mantis_checkpoint(db, p, n, cerr)
		runtime.KeepAlive(dir)
		return st
	})
}

// Stats implements StorageEngine.
func (e *RustEngine) Stats(_ context.Context) (Stats, error) {
	db, err := e.acquire()
	if err != nil {
		return Stats{}, err
	}
	defer e.mu.RUnlock()
	var s C.MantisStats
	var cerr *C.MantisError
	if st := C.mantis_stats(db, &s, &cerr); st != C.MANTIS_OK {
		return Stats{}, statusError(st, cerr)
	}
	out := Stats{
		Engine:             "rust",
		Keys:               uint64(s.keys),
		Reads:              uint64(s.reads),
		Writes:             uint64(s.writes),
		Deletes:            uint64(s.deletes),
		LiveBytes:          uint64(s.live_bytes),
		DeadBytes:          uint64(s.dead_bytes),
		Segments:           uint64(s.segments),
		Syncs:              uint64(s.syncs),
		Compactions:        uint64(s.compactions),
		CacheHits:          uint64(s.cache_hits),
		CacheMisses:        uint64(s.cache_misses),
		CacheEvictions:     uint64(s.cache_evictions),
		CacheResidentBytes: uint64(s.cache_resident_bytes),
		CacheCapacityBytes: uint64(s.cache_capacity_bytes),
	}
	if s.syncs > 0 {
		out.AvgGroupCommit = float64(s.synced_commits) / float64(s.syncs)
	}
	if total := out.CacheHits + out.CacheMisses; total > 0 {
		out.CacheHitRate = float64(out.CacheHits) / float64(total)
	}
	return out, nil
}

// HealthCheck implements StorageEngine.
func (e *RustEngine) HealthCheck(ctx context.Context) error {
	_, err := e.Stats(ctx)
	return err
}

// diagGetLoop looks up keys rounds times inside the library, with one
// crossing in all: the baseline BenchmarkCrossing sets against Get.
func (e *RustEngine) diagGetLoop(keys []string, rounds uint64) (uint64, error) {
	var kb []byte
	for _, k := range keys {
		kb = binary.LittleEndian.AppendUint32(kb, uint32(len(k)))
		kb = append(kb, k...)
	}
	db, err := e.acquire()
	if err != nil {
		return 0, err
	}
	defer e.mu.RUnlock()
	p, n := bptr(kb)
	var found C.uint64_t
	var cerr *C.MantisError
	st := C.mantis_diag_get_loop(db, p, n, C.size_t(len(keys)), C.uint64_t(rounds), &found, &cerr)
	runtime.KeepAlive(kb)
	if st != C.MANTIS_OK {
		return 0, statusError(st, cerr)
	}
	return uint64(found), nil
}
