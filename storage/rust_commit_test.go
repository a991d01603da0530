//go:build rust

package storage

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// openAlwaysEngine opens the Rust engine in dir with SyncAlways.
func openAlwaysEngine(t *testing.T, dir string) *RustEngine {
	t.Helper()
	cfg := conformanceConfig(dir)
	cfg.Sync = SyncAlways
	e := NewRustEngine(cfg)
	if err := e.Init(dir); err != nil {
		t.Fatal(err)
	}
	return e
}

// inParallel runs op(w, i) for i from 0 to each-1 on each of writers
// goroutines (w their number), each stopping at its first error, and
// fails t with the errors once all are done.
func inParallel(t *testing.T, writers, each int, op func(w, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := op(w, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestRustGroupCommitOnTheGoSide: under SyncAlways many goroutines write at
// once and wait for group commit as goroutines (one of them inside the
// library per sync). Each write is visible to its writer as soon as Put,
// Delete or Write returns, every acknowledged write survives a reopen, and
// the writers shared syncs.
func TestRustGroupCommitOnTheGoSide(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := openAlwaysEngine(t, dir)
	const writers, each = 32, 40
	inParallel(t, writers, each, func(w, i int) error {
		key, val := fmt.Sprintf("w%02d/%03d", w, i), fmt.Sprintf("v%d-%d", w, i)
		var err error
		switch i % 4 {
		case 0, 1:
			err = e.Put(ctx, key, val)
		case 2:
			err = e.Write(ctx, []BatchOp{{Kind: OpPut, Key: key, Value: val}, {Kind: OpPut, Key: key + "b", Value: val}})
		case 3:
			if err = e.Put(ctx, key, val); err == nil {
				err = e.Delete(ctx, key)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		got, err := e.Get(ctx, key)
		switch {
		case i%4 == 3 && err == nil:
			return fmt.Errorf("%s: deleted, yet Get returned %q", key, got)
		case i%4 != 3 && (err != nil || got != val):
			return fmt.Errorf("%s: right after the write Get returned %q, %v", key, got, err)
		}
		return nil
	})
	st, err := e.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d syncs, %.1f commits per sync", st.Syncs, st.AvgGroupCommit)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openAlwaysEngine(t, dir)
	defer e2.Close()
	for w := range writers {
		for i := range each {
			key, val := fmt.Sprintf("w%02d/%03d", w, i), fmt.Sprintf("v%d-%d", w, i)
			got, err := e2.Get(ctx, key)
			if i%4 == 3 {
				if err == nil {
					t.Fatalf("%s: deleted, yet present after reopen", key)
				}
				continue
			}
			if err != nil || got != val {
				t.Fatalf("%s after reopen: %q, %v", key, got, err)
			}
		}
	}
}

// TestRustLoneWriterLeadsItsSync: under SyncAlways a writer alone waits for
// its sync inside the library (no poller hand-off); when many write at
// once they wait for the poller, including those that arrive while a lone
// writer's sync runs; once they are gone a lone writer leads again. Every
// write is visible when it returns and survives a reopen.
func TestRustLoneWriterLeadsItsSync(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := openAlwaysEngine(t, dir)
	if e.commits.notes == nil {
		t.Skip("no commit notifier on this platform: writers lead their syncs anyway")
	}
	ledAlone := func() uint64 {
		e.commits.mu.Lock()
		defer e.commits.mu.Unlock()
		return e.commits.ledAlone
	}
	want := map[string]string{}
	lone := func(phase string, n int) {
		t.Helper()
		before := ledAlone()
		for i := range n {
			key, val := fmt.Sprintf("%s/%03d", phase, i), fmt.Sprintf("v%d", i)
			if err := e.Put(ctx, key, val); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if got, err := e.Get(ctx, key); err != nil || got != val {
				t.Fatalf("%s: right after the put Get returned %q, %v", key, got, err)
			}
			want[key] = val
		}
		// The first put after a crowd may still wait for the poller, which
		// then finds it alone.
		if led := ledAlone() - before; led < uint64(n-1) {
			t.Fatalf("%s: %d of %d lone puts led their own sync", phase, led, n)
		}
	}
	lone("first", 50)

	const writers, each = 32, 30
	var mu sync.Mutex
	inParallel(t, writers, each, func(w, i int) error {
		key, val := fmt.Sprintf("crowd/%02d/%03d", w, i), fmt.Sprintf("v%d-%d", w, i)
		if err := e.Put(ctx, key, val); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if got, err := e.Get(ctx, key); err != nil || got != val {
			return fmt.Errorf("%s: right after the put Get returned %q, %v", key, got, err)
		}
		mu.Lock()
		want[key] = val
		mu.Unlock()
		return nil
	})
	lone("again", 20)

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openAlwaysEngine(t, dir)
	defer e2.Close()
	for key, val := range want {
		if got, err := e2.Get(ctx, key); err != nil || got != val {
			t.Fatalf("%s after reopen: %q, %v", key, got, err)
		}
	}
	if len(want) != 50+writers*each+20 {
		t.Fatalf("%d writes acknowledged, want %d", len(want), 50+writers*each+20)
	}
}
