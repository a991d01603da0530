package storage

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMemoryConformance(t *testing.T) {
	runConformance(t, newTestMemoryEngine)
}

// newTestMemoryEngine is the memory engine's constructor for runConformance.
func newTestMemoryEngine(t *testing.T) StorageEngine {
	dir := t.TempDir()
	e := NewMemoryEngine(conformanceConfig(dir))
	if err := e.Init(dir); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// The memory engine's own promises, beyond the shared suite.

func TestMemoryBeforeInit(t *testing.T) {
	e := NewMemoryEngine(DefaultConfig())
	checkClosedEngine(t, e)
	noErr(t, "Close before Init", e.Close())
	wantErr(t, "Init after Close", e.Init(t.TempDir()), ErrClosed)
}

func TestMemoryDefaultValueLimit(t *testing.T) {
	e := NewMemoryEngine(DefaultConfig())
	noErr(t, "Init", e.Init(""))
	defer e.Close()
	wantErr(t, "Put", e.Put(t.Context(), "k", strings.Repeat("v", DefaultMaxValueSize+1)), ErrValueTooLarge)
}

// TestMemoryConflictTrackingEnds checks that commit tracking stops (and its
// memory is freed) once no transaction is open.
func TestMemoryConflictTrackingEnds(t *testing.T) {
	e := newTestMemoryEngine(t).(*MemoryEngine)
	old := begin(t, e)
	young := begin(t, e)
	for i := range 100 {
		mustPut(t, e, fmt.Sprintf("k%d", i), "v")
	}
	tracked := func() (int, int) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.conflicts.last), len(e.conflicts.order)
	}
	if n, _ := tracked(); n != 100 {
		t.Fatalf("%d keys tracked with transactions open, want 100", n)
	}
	noErr(t, "Rollback", old.Rollback())
	if n, _ := tracked(); n != 100 {
		t.Fatalf("%d keys tracked for the younger transaction, want 100", n)
	}
	noErr(t, "txn Put", young.Put("fresh", "x"))
	noErr(t, "Commit", young.Commit())
	if n, m := tracked(); n != 0 || m != 0 {
		t.Fatalf("%d keys (%d records) still tracked with no transaction open", n, m)
	}
	mustPut(t, e, "after", "v")
	if n, _ := tracked(); n != 0 {
		t.Fatalf("%d keys tracked with no transaction open", n)
	}
}

// TestMemoryReapsExpired checks that expired entries leave the tree as
// writes go on, so a TTL workload does not grow memory without bound.
func TestMemoryReapsExpired(t *testing.T) {
	e := newTestMemoryEngine(t).(*MemoryEngine)
	ctx := t.Context()
	for i := range 500 {
		noErr(t, "PutWithTTL", e.PutWithTTL(ctx, fmt.Sprintf("t%03d", i), "v", time.Millisecond))
	}
	mustPut(t, e, "keep", "v")
	time.Sleep(5 * time.Millisecond)
	s, err := e.Stats(ctx)
	noErr(t, "Stats", err)
	if s.Keys != 1 {
		t.Fatalf("Keys = %d with every TTL key expired, want 1", s.Keys)
	}
	for range 500/memReapPerCommit + 1 {
		mustPut(t, e, "keep", "v")
	}
	e.mu.Lock()
	n, m := e.tree.Len(), e.expiry.Len()
	e.mu.Unlock()
	if n != 1 || m != 0 {
		t.Fatalf("after enough writes the tree holds %d entries and the expiry index %d, want 1 and 0", n, m)
	}
}
