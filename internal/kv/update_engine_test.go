package kv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// noUpdater hides its engine's storage.Updater, so a Store over it runs
// INCR and APPEND as transactions (the path of a replicated engine).
type noUpdater struct{ storage.StorageEngine }

// TestStoreIncrByAndAppend: Store.IncrBy and Store.Append answer the same
// on every engine, evaluated in the engine (storage.Updater) or as a
// transaction, and a WATCH sees them as writes (a refusal is not one).
func TestStoreIncrByAndAppend(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		if _, ok := s.Engine().(storage.Updater); !ok {
			t.Fatalf("engine %s does not evaluate updates in place", s.Engine().Name())
		}
		for name, st := range map[string]*Store{"in place": s, "transaction": New(noUpdater{s.Engine()})} {
			t.Run(name, func(t *testing.T) { checkIncrAppend(t, st, name+":") })
		}
	})
}

func checkIncrAppend(t *testing.T, s *Store, p string) {
	ctx := t.Context()
	if n, err := s.IncrBy(ctx, p+"n", 5); n != 5 || err != nil {
		t.Fatalf("INCRBY on a missing key = %d, %v", n, err)
	}
	if n, err := s.IncrBy(ctx, p+"n", -7); n != -2 || err != nil {
		t.Fatalf("INCRBY -7 = %d, %v", n, err)
	}
	put := func(k, v string, at time.Time) {
		t.Helper()
		update(t, s, []string{k}, func(tx *Tx) error { _, err := tx.Set(k, v, SetOptions{ExpireAt: at}); return err })
	}
	put(p+"big", "9223372036854775807", time.Time{})
	if _, err := s.IncrBy(ctx, p+"big", 1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("overflow: %v", err)
	}
	for _, bad := range []string{"abc", " 1", "01", "-0", "+1", "1.0", "", "99999999999999999999"} {
		put(p+"bad", bad, time.Time{})
		if _, err := s.IncrBy(ctx, p+"bad", 1); !errors.Is(err, ErrNotInteger) {
			t.Fatalf("INCR of %q: %v", bad, err)
		}
		if v, _ := s.Engine().Get(ctx, p+"bad"); v != bad {
			t.Fatalf("a refused INCR changed %q to %q", bad, v)
		}
	}
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	put(p+"ttl", "1", at)
	if n, err := s.IncrBy(ctx, p+"ttl", 1); n != 2 || err != nil {
		t.Fatalf("INCR of a key with a TTL = %d, %v", n, err)
	}
	if n, err := s.Append(ctx, p+"ttl", "0", 10); n != 2 || err != nil {
		t.Fatalf("APPEND = %d, %v", n, err)
	}
	_, m, err := s.Engine().GetWithMeta(ctx, p+"ttl")
	if err != nil || !m.ExpiresAt.Equal(at) {
		t.Fatalf("INCR and APPEND left expiry %v (%v), want %v", m.ExpiresAt, err, at)
	}
	if v, _ := s.Engine().Get(ctx, p+"ttl"); v != "20" {
		t.Fatalf("value %q, want 20", v)
	}
	if n, err := s.Append(ctx, p+"s", "", 10); n != 0 || err != nil {
		t.Fatalf("APPEND of nothing to a missing key = %d, %v", n, err)
	}
	if _, err := s.Engine().Get(ctx, p+"s"); err != nil {
		t.Fatalf("APPEND did not create the key: %v", err)
	}
	if _, err := s.Append(ctx, p+"s", "12345678901", 10); !errors.Is(err, ErrStringTooLong) {
		t.Fatalf("APPEND past the limit: %v", err)
	}

	// WATCH: an INCR is a write; a refused one is not.
	exec := func(key string, between func()) error {
		w := s.NewWatch()
		if err := w.Add(ctx, key); err != nil {
			t.Fatal(err)
		}
		between()
		return s.Exec(ctx, w, []string{p + "other"}, func(tx *Tx) error {
			_, err := tx.Set(p+"other", "x", SetOptions{})
			return err
		})
	}
	if err := exec(p+"n", func() { _, _ = s.IncrBy(ctx, p+"n", 1) }); !errors.Is(err, ErrWatchedKeyChanged) {
		t.Fatalf("EXEC after an INCR of a watched key: %v", err)
	}
	if err := exec(p+"bad", func() { _, _ = s.IncrBy(ctx, p+"bad", 1) }); err != nil {
		t.Fatalf("EXEC after a refused INCR of a watched key: %v", err)
	}
	if err := exec(p+"s", func() { _, _ = s.Append(ctx, p+"s", "x", 10) }); !errors.Is(err, ErrWatchedKeyChanged) {
		t.Fatalf("EXEC after an APPEND to a watched key: %v", err)
	}
}

// TestStoreIncrByConcurrent: 20 goroutines x 200 increments of one key
// and of keys of their own, on every engine, lose nothing.
func TestStoreIncrByConcurrent(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for g := 0; g < 20; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				own := fmt.Sprintf("own%d", g)
				for i := 1; i <= 200; i++ {
					if _, err := s.IncrBy(ctx, "shared", 1); err != nil {
						errs <- err
						return
					}
					if n, err := s.IncrBy(ctx, own, 1); err != nil || n != int64(i) {
						errs <- fmt.Errorf("%s: %d, %v", own, n, err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if v, err := s.Engine().Get(ctx, "shared"); v != "4000" || err != nil {
			t.Fatalf("shared = %q, %v; want 4000", v, err)
		}
	})
}
