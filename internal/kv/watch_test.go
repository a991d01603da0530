package kv

import (
	"errors"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// exec runs a one-SET EXEC under w and reports whether it ran.
func exec(t *testing.T, s *Store, w *Watch) bool {
	t.Helper()
	err := s.Exec(t.Context(), w, []string{"x"}, func(tx *Tx) error {
		_, err := tx.Set("x", "exec", SetOptions{})
		return err
	})
	if errors.Is(err, ErrWatchedKeyChanged) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func watch(t *testing.T, s *Store, keys ...string) *Watch {
	t.Helper()
	w := s.NewWatch()
	if err := w.Add(t.Context(), keys...); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWatch(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	put := func(k, v string) {
		update(t, s, []string{k}, func(tx *Tx) error { _, err := tx.Set(k, v, SetOptions{}); return err })
	}
	put("w", "1")

	w := watch(t, s, "w")
	if !exec(t, s, w) {
		t.Fatal("EXEC with an untouched watched key aborted")
	}
	w = watch(t, s, "w")
	put("w", "1") // the same value is still a write
	if exec(t, s, w) {
		t.Fatal("EXEC ran after a watched key was rewritten")
	}
	w = watch(t, s, "w")
	if err := s.Engine().Put(ctx, "w", "1"); err != nil { // a write beside the Store (HTTP)
		t.Fatal(err)
	}
	if exec(t, s, w) {
		t.Fatal("EXEC ran after an engine write of a watched key")
	}
	// A missing key created and deleted again between WATCH and EXEC.
	w = watch(t, s, "ghost")
	put("ghost", "boo")
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Del([]string{"ghost"}); return err })
	if exec(t, s, w) {
		t.Fatal("EXEC ran after a watched key was created and deleted")
	}
	// The same through the HTTP API's operations.
	w = watch(t, s, "ghost2")
	if err := s.Put(ctx, "ghost2", "boo", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "ghost2"); err != nil {
		t.Fatal(err)
	}
	if exec(t, s, w) {
		t.Fatal("EXEC ran after an HTTP put and delete of a watched key")
	}
	// Expiry after WATCH aborts.
	update(t, s, nil, func(tx *Tx) error {
		_, err := tx.Set("short", "v", SetOptions{ExpireAt: time.Now().Add(30 * time.Millisecond)})
		return err
	})
	w = watch(t, s, "short")
	time.Sleep(50 * time.Millisecond)
	if exec(t, s, w) {
		t.Fatal("EXEC ran after a watched key expired")
	}
	// Writes of other keys do not abort; deleting a missing key is no write.
	w = watch(t, s, "w", "absent")
	put("unrelated", "1")
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Del([]string{"absent"}); return err })
	if !exec(t, s, w) {
		t.Fatal("EXEC aborted for writes of unwatched keys")
	}
	if s.watches.active.Load() != 0 {
		t.Fatalf("%d keys still registered after every EXEC", s.watches.active.Load())
	}
}

// A blind write (SET, MSET, and a SET whose expiry has passed, which
// deletes) records no map of its keys, yet still aborts the EXEC of every
// connection watching one of them, once it has committed.
func TestWatchBlindWrite(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	blind := func(fn func(tx *Tx) error) {
		t.Helper()
		if err := s.Blind(ctx, func(tx *Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			if tx.written != nil {
				t.Errorf("a blind write recorded its keys in a map: %v", tx.written)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	set := func(k string, opts SetOptions) func(tx *Tx) error {
		return func(tx *Tx) error { _, err := tx.Set(k, "v", opts); return err }
	}
	blind(set("b", SetOptions{}))

	w := watch(t, s, "b")
	blind(set("other", SetOptions{}))
	if !exec(t, s, w) {
		t.Fatal("EXEC aborted after a blind write of another key")
	}
	w = watch(t, s, "b")
	blind(set("b", SetOptions{}))
	if exec(t, s, w) {
		t.Fatal("EXEC ran after a blind SET of a watched key")
	}
	w = watch(t, s, "x", "b")
	blind(func(tx *Tx) error {
		if err := set("y", SetOptions{})(tx); err != nil {
			return err
		}
		return set("b", SetOptions{})(tx)
	})
	if exec(t, s, w) {
		t.Fatal("EXEC ran after an MSET-like blind write touching a watched key")
	}
	w = watch(t, s, "b")
	blind(set("b", SetOptions{ExpireAt: time.Now().Add(-time.Second)}))
	if exec(t, s, w) {
		t.Fatal("EXEC ran after a blind SET with a past expiry deleted a watched key")
	}
	if v, err := s.Get(ctx, "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("b after a SET with a past expiry: %q, %v", v, err)
	}
}
