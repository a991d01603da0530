//go:build rust

package storage

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// iterValue is the value the iterator tests store under key i: long
// enough to leave the index (values of 1 KiB are read from segments) and
// different at every byte position from its neighbours'.
func iterValue(i int) string {
	return strings.Repeat(fmt.Sprintf("%07d|", i), 128)
}

func iterKey(i int) string { return fmt.Sprintf("it/%06d", i) }

func fillIterKeys(t *testing.T, e StorageEngine, n int) {
	t.Helper()
	for b := 0; b < n; b += 500 {
		ops := make([]BatchOp, 0, 500)
		for i := b; i < min(b+500, n); i++ {
			ops = append(ops, BatchOp{Kind: OpPut, Key: iterKey(i), Value: iterValue(i)})
		}
		noErr(t, "Write", e.Write(t.Context(), ops))
	}
}

// LimitReads is a hint: whatever it says, Next returns every pair in
// order; while the hint covers the pairs still to read, they come in one
// batch (one crossing into the library), never more than the hint.
func TestRustIteratorLimitReads(t *testing.T) {
	e := newTestRustEngine(t)
	const n = 1500
	fillIterKeys(t, e, n)
	for _, limit := range []int{-1, 0, 1, 7, 100, 255, 256, 257, 1000, 1023, 1024, 1025, 1499, 1500, 5000} {
		it, err := e.NewIterator(t.Context(), "it/")
		noErr(t, "NewIterator", err)
		LimitReads(it, limit)
		i := 0
		for ; it.Next(); i++ {
			if it.Key() != iterKey(i) || it.Value() != iterValue(i) {
				t.Fatalf("limit %d: pair %d = %q (%d bytes), want %q", limit, i, it.Key(), len(it.Value()), iterKey(i))
			}
			r := it.(*rustIterator)
			if i == 0 && limit > 0 {
				// The first batch holds what the hint asked for.
				if got, want := r.left+1, min(limit, iterMaxLimitedItems, n); got != want {
					t.Fatalf("limit %d: first batch of %d pairs, want %d", limit, got, want)
				}
			}
		}
		noErr(t, "Error", it.Error())
		noErr(t, "Close", it.Close())
		if i != n {
			t.Fatalf("limit %d: %d pairs, want %d", limit, i, n)
		}
	}
	// A hint given in the middle of a scan counts from there.
	it, err := e.NewIterator(t.Context(), "it/")
	noErr(t, "NewIterator", err)
	for i := 0; i < 20; i++ {
		if !it.Next() || it.Key() != iterKey(i) {
			t.Fatalf("pair %d: %q", i, it.Key())
		}
	}
	// Batches of 16 and 32 pairs: 28 of the second are left, then the
	// next batch asks for the rest of the 200.
	LimitReads(it, 200)
	r := it.(*rustIterator)
	for i := 20; i < 220; i++ {
		if !it.Next() || it.Key() != iterKey(i) || it.Value() != iterValue(i) {
			t.Fatalf("pair %d: %q", i, it.Key())
		}
		if i == 48 && r.left+1 != 200-28 {
			t.Fatalf("the batch after the hint holds %d pairs, want %d", r.left+1, 200-28)
		}
	}
	noErr(t, "Close", it.Close())
}

// The keys and values an iterator hands out are views of the library's
// batch: valid until the next Next or Close, never written meanwhile by
// another iterator (each has its own batch buffer, and a freed iterator's
// buffer goes to a later one only once it is freed). Many goroutines scan
// at once, opening and closing iterators (so pooled buffers change hands)
// and checking every view byte for byte while the others run; after Close
// the views are gone (empty), not left pointing into a freed buffer. Run
// with -race (make test-go does), which also checks the iterator's own
// state is not shared unguarded.
func TestRustIteratorViewsStayValidUntilTheNextStep(t *testing.T) {
	e := newTestRustEngine(t)
	const n = 2000
	fillIterKeys(t, e, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for round := 0; round < 6; round++ {
				start := (g*263 + round*517) % (n - 300)
				it, err := e.NewRangeIterator(t.Context(), iterKey(start), "")
				if err != nil {
					errs <- err
					return
				}
				if round%2 == 1 {
					LimitReads(it, 100+g)
				}
				for i := start; i < start+300 && it.Next(); i++ {
					k, v := it.Key(), it.Value()
					if k != iterKey(i) || v != iterValue(i) {
						errs <- fmt.Errorf("goroutine %d: pair %d = %q (%d bytes)", g, i, k, len(v))
						return
					}
					// Still the same bytes after other goroutines' steps.
					for range 3 {
						runtime.Gosched()
						if it.Key() != iterKey(i) || it.Value() != iterValue(i) {
							errs <- fmt.Errorf("goroutine %d: pair %d changed under its view", g, i)
							return
						}
					}
				}
				if err := it.Close(); err != nil {
					errs <- err
					return
				}
				if it.Key() != "" || it.Value() != "" || it.Next() {
					errs <- fmt.Errorf("goroutine %d: a closed iterator still lends a pair", g)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// The count of open iterators, which decides whether a fetch yields its P,
// follows each iterator until Close (twice counts once) or, for one
// dropped without Close, until the garbage collector frees it: a count
// that only grew would make every scan yield.
func TestRustIteratorsCountedUntilClosedOrCollected(t *testing.T) {
	e := newTestRustEngine(t)
	fillIterKeys(t, e, 10)
	base := openIterators.Load()
	open := func() Iterator {
		it, err := e.NewIterator(t.Context(), "it/")
		noErr(t, "NewIterator", err)
		if !it.Next() {
			t.Fatal("an iterator over 10 keys returned none")
		}
		return it
	}
	a, b := open(), open()
	if got := openIterators.Load(); got != base+2 {
		t.Fatalf("%d iterators open after two were made, want %d", got, base+2)
	}
	noErr(t, "Close", a.Close())
	noErr(t, "Close again", a.Close())
	if got := openIterators.Load(); got != base+1 {
		t.Fatalf("%d iterators open after one was closed twice, want %d", got, base+1)
	}
	runtime.KeepAlive(b)
	b = nil
	for i := 0; openIterators.Load() != base; i++ {
		if i == 500 {
			t.Fatalf("%d iterators open after the dropped one was collected, want %d", openIterators.Load(), base)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
