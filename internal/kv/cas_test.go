package kv

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

func TestCompareAndSwapBranches(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Put(ctx, "k", "v", 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "gone", "v", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		cases := []struct {
			cmp  Compare
			want bool
		}{
			{Compare{Key: "k", Value: "v", HasValue: true}, true},
			{Compare{Key: "k", Value: "w", HasValue: true}, false},
			{Compare{Key: "k", Value: "", HasValue: true}, false},
			{Compare{Key: "k", Exists: true}, true},
			{Compare{Key: "k", Exists: false}, false},
			{Compare{Key: "missing", Exists: false}, true},
			{Compare{Key: "missing", Exists: true}, false},
			{Compare{Key: "missing", Value: "", HasValue: true}, false},
			{Compare{Key: "gone", Exists: false}, true},
		}
		for _, c := range cases {
			res, err := s.CompareAndSwap(ctx, CAS{
				Compares: []Compare{c.cmp},
				Success:  []Op{{Kind: OpGet, Key: "k"}},
				Failure:  []Op{{Kind: OpGet, Key: "missing"}},
			})
			if err != nil {
				t.Fatalf("%+v: %v", c.cmp, err)
			}
			want := []Result{{Kind: OpGet, Key: "missing"}}
			if c.want {
				want = []Result{{Kind: OpGet, Key: "k", Found: true, Value: "v"}}
			}
			if res.Succeeded != c.want || !reflect.DeepEqual(res.Results, want) {
				t.Fatalf("%+v: %+v, want succeeded %v and %+v", c.cmp, res, c.want, want)
			}
		}
		// Every compare must hold; no compares at all is success.
		res, err := s.CompareAndSwap(ctx, CAS{Compares: []Compare{{Key: "k", Exists: true}, {Key: "missing", Exists: true}}})
		if err != nil || res.Succeeded {
			t.Fatalf("one failing compare of two: %+v, %v", res, err)
		}
		res, err = s.CompareAndSwap(ctx, CAS{})
		if err != nil || !res.Succeeded || len(res.Results) != 0 {
			t.Fatalf("empty compare-and-swap: %+v, %v", res, err)
		}
	})
}

func TestCompareAndSwapWritesAndReadsOwnWrites(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Put(ctx, "a", "1", 0); err != nil {
			t.Fatal(err)
		}
		res, err := s.CompareAndSwap(ctx, CAS{
			Compares: []Compare{{Key: "a", Value: "1", HasValue: true}},
			Success: []Op{
				{Kind: OpPut, Key: "a", Value: "2"},
				{Kind: OpGet, Key: "a"},
				{Kind: OpDelete, Key: "b"},
				{Kind: OpPut, Key: "c", Value: "3"},
			},
			Failure: []Op{{Kind: OpPut, Key: "never", Value: "x"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []Result{{Kind: OpPut, Key: "a"}, {Kind: OpGet, Key: "a", Found: true, Value: "2"}, {Kind: OpDelete, Key: "b"}, {Kind: OpPut, Key: "c"}}
		if !res.Succeeded || !reflect.DeepEqual(res.Results, want) {
			t.Fatalf("%+v, want success with %+v", res, want)
		}
		wantKeys(t, s, map[string]string{"a": "2", "c": "3"}, "never")

		// The compare fails now: the failure branch runs instead.
		res, err = s.CompareAndSwap(ctx, CAS{
			Compares: []Compare{{Key: "a", Value: "1", HasValue: true}},
			Success:  []Op{{Kind: OpPut, Key: "a", Value: "wrong"}},
			Failure:  []Op{{Kind: OpPut, Key: "lost", Value: "yes"}},
		})
		if err != nil || res.Succeeded {
			t.Fatalf("%+v, %v; want the failure branch", res, err)
		}
		wantKeys(t, s, map[string]string{"a": "2", "lost": "yes"})
	})
}

func TestCompareAndSwapRefusesTTL(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		_, err := s.CompareAndSwap(context.Background(), CAS{
			Success: []Op{{Kind: OpPut, Key: "x", Value: "1"}},
			Failure: []Op{{Kind: OpPut, Key: "y", Value: "1", TTL: time.Second}},
		})
		if !errors.Is(err, storage.ErrInvalidArgument) || err.Error() != "op 0: ttl is not supported inside a transaction" {
			t.Fatalf("a TTL in a branch: %v", err)
		}
		wantKeys(t, s, nil, "x", "y")
	})
}

// conflictEngine makes the next conflicts commits of a transaction lose to
// a plain write of the key "contended".
type conflictEngine struct {
	storage.StorageEngine
	conflicts atomic.Int32
}

func (e *conflictEngine) BeginTransaction(ctx context.Context) (storage.Transaction, error) {
	tx, err := e.StorageEngine.BeginTransaction(ctx)
	if err != nil {
		return nil, err
	}
	return &conflictTxn{Transaction: tx, e: e}, nil
}

type conflictTxn struct {
	storage.Transaction
	e *conflictEngine
}

func (tx *conflictTxn) Commit() error {
	if tx.e.conflicts.Add(-1) >= 0 {
		if err := tx.e.Put(context.Background(), "contended", "someone else"); err != nil {
			return err
		}
	}
	return tx.Transaction.Commit()
}

func TestCompareAndSwapRetriesConflicts(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		e := &conflictEngine{StorageEngine: s.Engine()}
		s = New(e)
		ctx := context.Background()
		if err := s.Put(ctx, "contended", "start", 0); err != nil {
			t.Fatal(err)
		}
		cas := CAS{
			Compares: []Compare{{Key: "contended", Exists: true}},
			Success:  []Op{{Kind: OpPut, Key: "contended", Value: "mine"}},
		}
		// One conflict: the rerun evaluates the compare again and commits.
		e.conflicts.Store(1)
		if res, err := s.CompareAndSwap(ctx, cas); err != nil || !res.Succeeded {
			t.Fatalf("after one conflict: %+v, %v", res, err)
		}
		wantKeys(t, s, map[string]string{"contended": "mine"})

		// A conflict on every attempt: the error says so, nothing written.
		e.conflicts.Store(CASAttempts)
		_, err := s.CompareAndSwap(ctx, cas)
		var conflict *CASConflictError
		if !errors.As(err, &conflict) || conflict.Attempts != CASAttempts || !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("conflicts on every attempt: %v, want a CASConflictError wrapping ErrConflict", err)
		}
		if n := e.conflicts.Load(); n != 0 {
			t.Fatalf("the compare-and-swap ran %d times, want %d", CASAttempts-int(n), CASAttempts)
		}
		wantKeys(t, s, map[string]string{"contended": "someone else"})

		// A cancelled context ends the retries.
		e.conflicts.Store(CASAttempts)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.CompareAndSwap(cctx, cas); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled during retries: %v, want context.Canceled", err)
		}
	})
}

// TestCompareAndSwapNoLostUpdates has clients increment one counter with
// compare-and-swap loops: every success must count, so the final value is
// the number of successes.
func TestCompareAndSwapNoLostUpdates(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Put(ctx, "n", "0", 0); err != nil {
			t.Fatal(err)
		}
		const clients, rounds = 4, 40
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done := 0; done < rounds; {
					v, err := s.Get(ctx, "n")
					if err != nil {
						errs <- err
						return
					}
					n, _ := strconv.Atoi(v)
					res, err := s.CompareAndSwap(ctx, CAS{
						Compares: []Compare{{Key: "n", Value: v, HasValue: true}},
						Success:  []Op{{Kind: OpPut, Key: "n", Value: strconv.Itoa(n + 1)}},
					})
					var conflict *CASConflictError
					if errors.As(err, &conflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					if res.Succeeded {
						done++
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		wantKeys(t, s, map[string]string{"n": strconv.Itoa(clients * rounds)})
	})
}
