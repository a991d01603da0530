package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// sessionReadCounter counts the engine reads of session records.
type sessionReadCounter struct {
	storage.StorageEngine
	reads atomic.Int64
}

func (c *sessionReadCounter) Get(ctx context.Context, key string) (string, error) {
	if strings.HasPrefix(key, sessionPrefix) {
		c.reads.Add(1)
	}
	return c.StorageEngine.Get(ctx, key)
}

func newCountingFSM(t *testing.T, e storage.StorageEngine) (*fsm, *sessionReadCounter) {
	t.Helper()
	c := &sessionReadCounter{StorageEngine: e}
	f, err := newFSM(&localStore{name: "memory"}, c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

// TestApplySessionCache: Apply finds the session records it wrote without
// reading the engine, answers copies as before, reads the engine again for
// sessions it does not hold (a restart, more sessions than it keeps), and
// never holds more than maxCachedSessions.
func TestApplySessionCache(t *testing.T) {
	mem := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := mem.Init(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	f, reads := newCountingFSM(t, mem)

	w1 := sessionEntry(put("k", "1"), "n1.c.1", 1)
	if a := f.ApplyBatch([]*raft.Log{entryLog(t, 1, w1)}); a[0] != nil {
		t.Fatal(a[0])
	}
	if n := reads.reads.Load(); n != 1 {
		t.Fatalf("%d engine reads of a new session's record, want 1", n)
	}
	w2 := sessionEntry(put("k", "2"), "n1.c.1", 2)
	a := f.ApplyBatch([]*raft.Log{entryLog(t, 2, w2)})
	if a[0] != nil {
		t.Fatal(a[0])
	}
	a = f.ApplyBatch([]*raft.Log{entryLog(t, 3, w2), entryLog(t, 4, w1)})
	if a[0] != nil {
		t.Fatalf("copy of the last write: %v, want its answer (nil)", a[0])
	}
	if err, _ := a[1].(error); !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("copy of an older write: %v, want ErrUnknownOutcome", a[1])
	}
	if n := reads.reads.Load(); n != 1 {
		t.Fatalf("%d engine reads of session records, want still 1 (the fsm holds the record)", n)
	}
	if r, _ := recordOf(t, mem, "k"); r.version != 2 || r.value != "2" {
		t.Fatalf("k = %+v, want version 2 (each write applied once)", r)
	}
	if d := f.duplicates.Load(); d != 2 {
		t.Fatalf("duplicates %d, want 2", d)
	}

	// A restarted fsm reads the record from the engine, with the same
	// answers.
	f2, reads2 := newCountingFSM(t, mem)
	if a := f2.ApplyBatch([]*raft.Log{entryLog(t, 5, w2)}); a[0] != nil || f2.duplicates.Load() != 1 {
		t.Fatalf("copy after a restart: %v (duplicates %d)", a[0], f2.duplicates.Load())
	}
	if n := reads2.reads.Load(); n != 1 {
		t.Fatalf("%d engine reads after a restart, want 1", n)
	}

	// More sessions than the fsm keeps: the cache stays bounded, and a
	// session dropped from it is read from the engine again.
	index := uint64(5)
	for s := 0; s <= maxCachedSessions; s += maxAppendBatch {
		var logs []*raft.Log
		for j := s; j < min(s+maxAppendBatch, maxCachedSessions+1); j++ {
			index++
			logs = append(logs, entryLog(t, index, sessionEntry(put(fmt.Sprintf("b%d", j), "v"), fmt.Sprintf("n2.c.%d", j), 1)))
		}
		for _, a := range f2.ApplyBatch(logs) {
			if a != nil {
				t.Fatal(a)
			}
		}
		if len(f2.sessions) > maxCachedSessions {
			t.Fatalf("the fsm holds %d session records, more than %d", len(f2.sessions), maxCachedSessions)
		}
	}
	before := reads2.reads.Load()
	index++
	if a := f2.ApplyBatch([]*raft.Log{entryLog(t, index, w2)}); a[0] != nil || f2.duplicates.Load() != 2 {
		t.Fatalf("copy of a session no longer held: %v (duplicates %d)", a[0], f2.duplicates.Load())
	}
	if reads2.reads.Load() != before+1 {
		t.Fatal("a session the fsm no longer holds was not read from the engine")
	}
}

// maxAppendBatch is the size of the raft batches the test applies (the
// server's MaxAppendEntries).
const maxAppendBatch = 256
