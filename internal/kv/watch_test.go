package kv

import (
	"errors"
	"testing"
	"time"
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
