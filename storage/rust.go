//go:build rust

package storage

/*
#cgo CFLAGS: -I${SRCDIR}/../rust-core/include
#cgo linux LDFLAGS: ${SRCDIR}/../rust-core/target/release/libmantisdb_core.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#cgo darwin LDFLAGS: ${SRCDIR}/../rust-core/target/release/libmantisdb_core.a -liconv -lSystem -lc -lm
#cgo noescape mantis_get_into
#cgo nocallback mantis_get_into
#cgo noescape mantis_put_begin
#cgo nocallback mantis_put_begin
#cgo noescape mantis_put_ttl_begin
#cgo nocallback mantis_put_ttl_begin
#cgo noescape mantis_delete_begin
#cgo nocallback mantis_delete_begin
#cgo noescape mantis_write_batch_begin
#cgo nocallback mantis_write_batch_begin
#cgo nocallback mantis_commit_wait
#cgo nocallback mantis_prepare_log
#cgo noescape mantis_multi_get
#cgo nocallback mantis_multi_get
#cgo noescape mantis_get_many_into
#cgo nocallback mantis_get_many_into
#include "mantisdb.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultEngine is the engine NewDefaultStorageEngine picks: "rust" in
// builds with the Rust core.
const DefaultEngine = "rust"

// RustAvailable reports whether this binary links the Rust engine.
const RustAvailable = true

// getStackBuf is the size of the on-stack buffer Get reads into while the
// engine's values are small.
const getStackBuf = 512

// maxGetHint caps the buffer Get allocates before it knows a value's size:
// larger values take a second call, whose cost is small beside their copy,
// and a small value never pays for zeroing more than this.
const maxGetHint = 64 << 10

// RustEngine is the durable engine: the Rust core (rust-core/) behind its C
// ABI, linked statically. Safe for concurrent use.
type RustEngine struct {
	cfg Config
	// mu guards db against Close: calls hold it shared, Close exclusively.
	mu     sync.RWMutex
	db     *C.MantisDb
	closed bool
	opened bool
	// getHint is the buffer size Get allocates and reads into, so a value
	// larger than the stack buffer takes one call instead of a call that
	// answers its size and a second that copies it. It follows the large
	// values Get has met (see noteLargeValue, noteSmallValue); 0 or at most
	// getStackBuf: the stack buffer.
	getHint atomic.Int64
	// twoCallGets turns getHint off (the size probe and second call on every
	// value over getStackBuf), kept for BenchmarkCrossing's comparison.
	twoCallGets bool
	// commits lets writers wait for group commit as goroutines: under sync
	// always on Linux with no thread in the library (its poller reads the
	// library's commit notifier), elsewhere with one OS thread in the
	// library per sync (see rust_commit.go).
	commits commitWaiter
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
		o.sync = C.MANTIS_SYNC_INTERVAL
		o.sync_interval_ms = C.uint64_t(e.cfg.SyncInterval.Milliseconds())
	case SyncNever:
		o.sync = C.MANTIS_SYNC_NEVER
	default:
		o.sync = C.MANTIS_SYNC_ALWAYS
	}
	o.cache_bytes = C.uint64_t(e.cfg.CacheSize)
	o.segment_size = C.uint64_t(e.cfg.SegmentSize)
	o.max_value_len = C.uint64_t(e.cfg.MaxValueSize)
	o.map_reads = C.bool(!e.cfg.NoMapReads)
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
	if e.cfg.Sync == SyncAlways {
		e.commits.startCommitPoller(db)
	}
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
	e.commits.stopCommitPoller()
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// Put implements StorageEngine.
func (e *RustEngine) Put(ctx context.Context, key, value string) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	vp, vl := ptr(value)
	var cerr *C.MantisError
	var ticket C.uint64_t
	if st := C.mantis_put_begin(db, kp, kl, vp, vl, &ticket, &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return e.ackCommit(ctx, db, uint64(ticket))
}

// PutWithTTL implements StorageEngine.
func (e *RustEngine) PutWithTTL(ctx context.Context, key, value string, ttl time.Duration) error {
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
	var ticket C.uint64_t
	if st := C.mantis_put_ttl_begin(db, kp, kl, vp, vl, C.uint64_t(ttl.Milliseconds()), &ticket, &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return e.ackCommit(ctx, db, uint64(ticket))
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
	var n C.size_t
	var cerr *C.MantisError
	if hint := e.getHint.Load(); hint > getStackBuf && !e.twoCallGets {
		buf := make([]byte, hint)
		st := C.mantis_get_into(db, kp, kl, (*C.uint8_t)(unsafe.SliceData(buf)), C.size_t(hint), &n, &cerr)
		switch st {
		case C.MANTIS_OK:
			e.noteSmallValue(int64(n), hint)
			if int64(n) < hint/2 {
				// Do not keep a buffer mostly unused alive behind the string.
				return string(buf[:n]), nil
			}
			// SAFETY: buf is not referenced anywhere else and never written again.
			return unsafe.String(unsafe.SliceData(buf), int(n)), nil
		case C.MANTIS_NOT_FOUND:
			return "", fmt.Errorf("%w", ErrNotFound)
		case C.MANTIS_BUFFER_TOO_SMALL:
			e.noteLargeValue(int64(n))
			return e.getExact(db, kp, kl, n)
		default:
			return "", statusError(st, cerr)
		}
	}
	var stack [getStackBuf]byte
	st := C.mantis_get_into(db, kp, kl, (*C.uint8_t)(unsafe.Pointer(&stack[0])), getStackBuf, &n, &cerr)
	switch st {
	case C.MANTIS_OK:
		return string(stack[:n]), nil
	case C.MANTIS_NOT_FOUND:
		return "", ErrNotFound
	case C.MANTIS_BUFFER_TOO_SMALL:
		e.noteLargeValue(int64(n))
		return e.getExact(db, kp, kl, n)
	default:
		return "", statusError(st, cerr)
	}
}

// TransientArgs implements storage.TransientArgs: every call copies its
// keys and values into the core (or into a batch buffer) before it
// returns, and errors carry copies.
func (e *RustEngine) TransientArgs() bool { return true }

// AppendValue implements ValueAppender: the core copies the value into
// dst's spare capacity, grown first to getStackBuf bytes at least; a
// larger value takes a second call into a buffer of its size.
func (e *RustEngine) AppendValue(_ context.Context, dst []byte, key string) ([]byte, error) {
	db, err := e.acquire()
	if err != nil {
		return dst, err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	var cerr *C.MantisError
	need := getStackBuf
	for {
		if cap(dst)-len(dst) < need {
			dst = slices.Grow(dst, need)
		}
		room := dst[len(dst):cap(dst)]
		var n C.size_t
		st := C.mantis_get_into(db, kp, kl, (*C.uint8_t)(unsafe.SliceData(room)), C.size_t(len(room)), &n, &cerr)
		switch st {
		case C.MANTIS_OK:
			return dst[:len(dst)+int(n)], nil
		case C.MANTIS_NOT_FOUND:
			return dst, ErrNotFound
		case C.MANTIS_BUFFER_TOO_SMALL:
			// n is the value's size; a concurrent overwrite may change it,
			// so this loops until a read fits.
			need = int(n)
		default:
			return dst, statusError(st, cerr)
		}
	}
}

// AppendValues implements ValuesAppender: one call reads every key (or,
// when a value does not fit the room left, those before it; the call is
// then made again for the rest with room for it).
func (e *RustEngine) AppendValues(_ context.Context, dst []byte, keys []string, lens []int) ([]byte, error) {
	if len(lens) != len(keys) {
		return dst, fmt.Errorf("%w: %d lengths for %d keys", ErrInvalidArgument, len(lens), len(keys))
	}
	if len(keys) == 0 {
		return dst, nil
	}
	bufs := valuesBufs.Get().(*valuesBuf)
	defer bufs.recycle()
	kb, lb := bufs.keys[:0], bufs.lens[:0]
	for _, k := range keys {
		kb = binary.LittleEndian.AppendUint32(kb, uint32(len(k)))
		kb = append(kb, k...)
	}
	lb = append(lb, make([]byte, 8*len(keys))...)
	bufs.keys, bufs.lens = kb, lb
	db, err := e.acquire()
	if err != nil {
		return dst, err
	}
	defer e.mu.RUnlock()
	need := getStackBuf
	from, koff := 0, 0
	for from < len(keys) {
		if cap(dst)-len(dst) < need {
			dst = slices.Grow(dst, need)
		}
		room := dst[len(dst):cap(dst)]
		kp, kn := bptr(kb[koff:])
		var done C.size_t
		var cerr *C.MantisError
		st := C.mantis_get_many_into(db, kp, kn, C.size_t(len(keys)-from),
			(*C.uint8_t)(unsafe.SliceData(room)), C.size_t(len(room)),
			(*C.uint8_t)(unsafe.SliceData(lb[8*from:])), &done, &cerr)
		runtime.KeepAlive(kb)
		n := from + int(done)
		for i := from; i < n; i++ {
			koff += keyHeaderLen + len(keys[i])
			l := binary.LittleEndian.Uint64(lb[8*i:])
			if l == C.MANTIS_VALUE_ABSENT {
				lens[i] = -1
				continue
			}
			lens[i] = int(l)
			dst = dst[:len(dst)+int(l)]
		}
		from = n
		switch st {
		case C.MANTIS_OK:
			return dst, nil
		case C.MANTIS_BUFFER_TOO_SMALL:
			// The value of key from did not fit: room for it, at least.
			need = int(binary.LittleEndian.Uint64(lb[8*from:]))
		default:
			return dst, statusError(st, cerr)
		}
	}
	return dst, nil
}

// valuesBuf holds the encoded keys and the lengths of one AppendValues
// call, recycled through valuesBufs.
type valuesBuf struct{ keys, lens []byte }

var valuesBufs = sync.Pool{New: func() any { return new(valuesBuf) }}

// recycle returns b to valuesBufs, unless a huge call grew it.
func (b *valuesBuf) recycle() {
	if cap(b.keys)+cap(b.lens) <= maxPooledBatch {
		valuesBufs.Put(b)
	}
}

// getExact reads a value known to be n bytes into an exact-size allocation
// that becomes the string. A concurrent overwrite may change the size; it
// retries then.
func (e *RustEngine) getExact(db *C.MantisDb, kp *C.uint8_t, kl C.size_t, n C.size_t) (string, error) {
	var cerr *C.MantisError
	for {
		buf := make([]byte, int(n))
		need := n
		st := C.mantis_get_into(db, kp, kl, (*C.uint8_t)(unsafe.SliceData(buf)), need, &n, &cerr)
		switch st {
		case C.MANTIS_OK:
			// SAFETY: buf is not referenced anywhere else and never written again.
			return unsafe.String(unsafe.SliceData(buf), int(n)), nil
		case C.MANTIS_NOT_FOUND:
			return "", ErrNotFound
		case C.MANTIS_BUFFER_TOO_SMALL:
			continue
		default:
			return "", statusError(st, cerr)
		}
	}
}

// noteLargeValue raises the Get buffer size to hold an n-byte value, so
// values up to that size fit in one call. No more: the buffer becomes the
// returned string, and bytes allocated beyond the value cost more in
// zeroing and garbage collection than the call they might save.
func (e *RustEngine) noteLargeValue(n int64) {
	want := min(n, maxGetHint)
	for {
		cur := e.getHint.Load()
		if cur >= want || e.getHint.CompareAndSwap(cur, want) {
			return
		}
	}
}

// noteSmallValue lets the Get buffer size decay by 1/16 after a value that
// used at most a quarter of it: an engine whose large values are gone is
// back on the stack buffer within about a hundred Gets, while one mixing
// sizes keeps a buffer its large values fit (one of them restores what
// several small ones took).
func (e *RustEngine) noteSmallValue(n, hint int64) {
	if n <= hint/4 {
		e.getHint.CompareAndSwap(hint, hint-hint/16)
	}
}

// Delete implements StorageEngine.
func (e *RustEngine) Delete(ctx context.Context, key string) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	kp, kl := ptr(key)
	var cerr *C.MantisError
	var ticket C.uint64_t
	if st := C.mantis_delete_begin(db, kp, kl, &ticket, &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return e.ackCommit(ctx, db, uint64(ticket))
}

// writeBatch sends a whole batch in one call.
func (e *RustEngine) writeBatch(ctx context.Context, buf []byte, count int) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	p, n := bptr(buf)
	var cerr *C.MantisError
	var ticket C.uint64_t
	st := C.mantis_write_batch_begin(db, p, n, C.size_t(count), &ticket, &cerr)
	runtime.KeepAlive(buf)
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return e.ackCommit(ctx, db, uint64(ticket))
}

// checkOps validates ops in Go before anything is encoded: the wire
// format carries lengths in 32 bits, so they must be bounded first, and a
// bad op is then reported with the same words by both engines. Calls that
// pass keys as (pointer, length) leave the check to the core.
func (e *RustEngine) checkOps(ops []BatchOp) error {
	for _, op := range ops {
		if err := CheckKey(op.Key); err != nil {
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
			if err := checkExpiry(op); err != nil {
				return err
			}
		} else if op.Kind != OpDelete {
			return fmt.Errorf("%w: unknown op kind %d", ErrInvalidArgument, op.Kind)
		}
	}
	return nil
}

// Write implements StorageEngine.
func (e *RustEngine) Write(ctx context.Context, ops []BatchOp) error {
	if err := e.checkOps(ops); err != nil {
		return err
	}
	bp := batchBufs.Get().(*[]byte)
	buf := appendOps((*bp)[:0], ops)
	err := e.writeBatch(ctx, buf, len(ops))
	// The library has copied the batch by the time writeBatch returns
	// (mantis_write_batch_begin keeps no pointer), so buf is free.
	if cap(buf) <= maxPooledBatch {
		*bp = buf[:0]
		batchBufs.Put(bp)
	}
	return err
}

// batchBufs recycles the buffers Write encodes batches into: without it a
// batch allocates its encoded size on every call (100 KiB for 100 values
// of 1 KiB), zeroed by the allocator and then garbage for the collector.
var batchBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBatch bounds the buffers batchBufs keeps, so that a rare huge
// batch does not stay allocated.
const maxPooledBatch = 1 << 20

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
		if err := CheckKey(k); err != nil {
			return nil, err
		}
	}
	kb := encodeKeys(keys)
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
	return decodeMultiGet(data, keys)
}

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
	kb := encodeKeys(keys)
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
