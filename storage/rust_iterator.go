//go:build rust

package storage

/*
#cgo noescape mantis_iter_next_refs
#cgo nocallback mantis_iter_next_refs
#include "mantisdb.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync/atomic"
	"unsafe"
)

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
	openIterators.Add(1)
	ri := &rustIterator{it: it, procs: int64(runtime.GOMAXPROCS(0))}
	// A leak backstop only: Close frees the handle and stops it; it catches
	// an iterator dropped without Close.
	ri.cleanup = runtime.AddCleanup(ri, func(h *C.MantisIter) {
		C.mantis_iter_free(h)
		openIterators.Add(-1)
	}, it)
	return ri, nil
}

// openIterators counts the Rust iterators not yet closed or collected:
// fetch yields its P only when they could hold every P.
var openIterators atomic.Int64

// Pairs fetched per crossing: the first batch is small, so a scan that
// stops early (a page, a limit) does not load values it never reads; each
// next batch doubles, up to the maximum, so a long scan crosses rarely. A
// scan that said how many pairs it reads (LimitReads) fetches them in
// batches of up to iterMaxLimitedItems (the library walks as many keys
// for one such batch), as it reads every pair of each.
const (
	iterFirstBatchItems = 16
	iterMaxBatchItems   = 256
	iterMaxLimitedItems = 1024
)

// rustIterator is used by one goroutine at a time, as the Iterator
// contract says: no lock guards its steps (a mutex's two locked
// instructions were three quarters of Next's time in a scan).
type rustIterator struct {
	it         *C.MantisIter
	cleanup    runtime.Cleanup
	batch      []C.MantisPairRef // borrowed from the library until the next fetch or Close
	at         int
	left       int
	procs      int64 // GOMAXPROCS when the iterator was made
	nextItems  int   // pairs the next fetch asks for
	limit      int   // pairs the caller said it still reads (LimitReads); 0: no hint
	key, value string
	err        error
	done       bool
}

func (r *rustIterator) Next() bool {
	if r.done || r.it == nil || (r.left == 0 && !r.fetch()) {
		return false
	}
	p := &r.batch[r.at]
	// Views of the library's bytes (its chunk buffers, or the memory map
	// of the segment a value lies in), valid until the next fetch or
	// Close, which is what the Iterator contract promises (and no more).
	r.key, r.value = view(p.key, p.key_len), view(p.value, p.value_len)
	r.at++
	r.left--
	if r.limit > 0 {
		r.limit--
	}
	return true
}

// LimitReads implements ReadLimiter: the next fetch asks for the pairs
// the caller still reads (up to iterMaxLimitedItems) in one batch, so a
// scan of up to 1,024 pairs crosses into the library once, walks the
// index once and loads no value past its limit.
func (r *rustIterator) LimitReads(n int) {
	r.limit = max(n, 0)
}

// view is a string over the n bytes at p without copying; it is valid
// only while the library keeps those bytes, so it must not outlive the
// batch it belongs to.
func view(p *C.uint8_t, n C.size_t) string {
	if n == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(p)), int(n))
}

// fetch reads the next batch of pairs in one call. Nothing is copied: the
// batch is the library's list of where each pair's bytes lie, and the
// library keeps both until the next fetch or Close, so the views of the
// previous batch die here.
func (r *rustIterator) fetch() bool {
	var pairs *C.MantisPairRef
	var n C.size_t
	var cerr *C.MantisError
	if r.nextItems == 0 {
		r.nextItems = iterFirstBatchItems
	}
	items := r.nextItems
	if r.limit > 0 {
		// The pairs of the previous batch are all read: the hint counts
		// from here.
		items = min(r.limit, iterMaxLimitedItems)
	}
	r.batch, r.key, r.value = nil, "", ""
	st := C.mantis_iter_next_refs(r.it, C.size_t(items), &pairs, &n, &cerr)
	// When scans could hold every P, let other runnable goroutines have
	// this one after each batch. A goroutine whose cgo calls return
	// quickly keeps its P from call to call, and one whose call lost its P
	// waits in the global run queue until a running goroutine is preempted
	// (10 ms slices): with more scanners than Ps most scans finished in a
	// fraction of a millisecond and a few percent waited 100-400 ms
	// (docs/performance/rust-core.md). Yielding shares the CPUs batch by
	// batch. It is not free: the runtime wakes another thread to take the
	// yielded goroutine, and that hand-off was a fifth of a lone 1,000-key
	// scan's CPU, so fewer scans than Ps, which leave a P to the goroutines
	// waiting, do not yield.
	if openIterators.Load() >= r.procs {
		runtime.Gosched()
	}
	r.nextItems = min(2*r.nextItems, iterMaxBatchItems)
	if st != C.MANTIS_OK {
		r.err, r.done = statusError(st, cerr), true
		return false
	}
	if n == 0 {
		r.done = true
		return false
	}
	r.batch = unsafe.Slice(pairs, int(n))
	r.at, r.left = 0, int(n)
	return true
}

func (r *rustIterator) Key() string   { return r.key }
func (r *rustIterator) Value() string { return r.value }

func (r *rustIterator) Error() error { return r.err }

func (r *rustIterator) Close() error {
	if r.it != nil {
		r.cleanup.Stop()
		C.mantis_iter_free(r.it)
		openIterators.Add(-1)
		r.it = nil
	}
	// The library's batch is gone with the handle.
	r.batch, r.key, r.value, r.left = nil, "", "", 0
	r.done = true
	return nil
}
