package kv

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// newTestStore is a Store over a fresh memory engine, with its clock.
func newTestStore(t *testing.T) *Store {
	t.Helper()
	e := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := e.Init(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return New(e)
}

// update runs fn as one Update of keys and fails the test on an error.
func update(t *testing.T, s *Store, keys []string, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), keys, fn); err != nil {
		t.Fatal(err)
	}
}

// value reads key through a View.
func value(t *testing.T, s *Store, key string) (string, bool) {
	t.Helper()
	var v string
	var ok bool
	if err := s.View(t.Context(), func(tx *Tx) (err error) { v, ok, err = tx.Get(key); return err }); err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// TestUpdateRetriesConflicts: writers that bypass the key locks (the bare
// engine, as the HTTP API writes) make Update retry, and no increment is
// lost.
func TestUpdateRetriesConflicts(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	const n = 200
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := s.Update(ctx, []string{"c"}, func(tx *Tx) error { _, err := tx.IncrBy("c", 1); return err }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// A writer beside the key locks (the bare engine, as HTTP writes)
	// increments the same key in its own transactions: Update's commits
	// conflict with it and must retry, losing nothing on either side.
	for i := 0; i < 100; {
		tx, err := s.Engine().BeginTransaction(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, err := tx.Get("c")
		if errors.Is(err, storage.ErrNotFound) {
			v = "0"
		} else if err != nil {
			t.Fatal(err)
		}
		n, _ := ParseInt(v)
		if err := tx.Put("c", strconv.FormatInt(n+1, 10)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err == nil {
			i++
		} else if !errors.Is(err, storage.ErrConflict) {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if v, _ := value(t, s, "c"); v != "900" {
		t.Fatalf("c = %q after 4 x %d + 100 increments", v, n)
	}
}

// TestUpdateErrorRollsBack: an error from fn writes nothing.
func TestUpdateErrorRollsBack(t *testing.T) {
	s := newTestStore(t)
	boom := errors.New("boom")
	err := s.Update(t.Context(), []string{"a"}, func(tx *Tx) error {
		if _, err := tx.Set("a", "1", SetOptions{}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v", err)
	}
	if _, ok := value(t, s, "a"); ok {
		t.Fatal("a was written by a failed Update")
	}
}

// TestBlindPastExpiryDeletes: a blind SET with an expiry already passed
// removes the key in the same commit.
func TestBlindPastExpiryDeletes(t *testing.T) {
	s := newTestStore(t)
	update(t, s, []string{"k"}, func(tx *Tx) error { _, err := tx.Set("k", "old", SetOptions{}); return err })
	err := s.Blind(t.Context(), func(tx *Tx) error {
		_, err := tx.Set("k", "new", SetOptions{ExpireAt: time.Now().Add(-time.Second)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := value(t, s, "k"); ok {
		t.Fatalf("k = %q after SET with a past expiry", v)
	}
}

// BenchmarkBlindSet is one SET as the Redis protocol runs it outside MULTI
// (Store.Blind on the memory engine); -benchmem shows its allocations.
func BenchmarkBlindSet(b *testing.B) {
	e := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := e.Init(""); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	s := New(e)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Blind(ctx, func(tx *Tx) error { _, err := tx.Set("key:000000012345", "v", SetOptions{}); return err }); err != nil {
			b.Fatal(err)
		}
	}
}
