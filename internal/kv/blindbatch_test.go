package kv

import (
	"errors"
	"testing"
	"time"
)

// TestBlindBatch: the writes of several Adds land in one Write, in order
// (a later write of a key wins), an Add that fails leaves nothing behind,
// and watchers learn of the batch only once it commits.
func TestBlindBatch(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		w := watch(t, s, "a")
		wg := watch(t, s, "gone")
		b := s.NewBlindBatch(ctx)
		set := func(k, v string, at time.Time) func(tx *Tx) error {
			return func(tx *Tx) error { _, err := tx.Set(k, v, SetOptions{ExpireAt: at}); return err }
		}
		if err := b.Add(set("a", "1", time.Time{})); err != nil {
			t.Fatal(err)
		}
		if err := b.Add(func(tx *Tx) error { return tx.MSet([]string{"a", "2", "b", "3"}) }); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := b.Add(func(tx *Tx) error {
			if err := tx.MSet([]string{"gone", "x", "b", "lost"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("failed Add: %v", err)
		}
		if err := b.Add(set("past", "v", time.Now().Add(-time.Hour))); err != nil {
			t.Fatal(err)
		}
		if b.Ops() != 4 || b.Bytes() != len("a1a2b3past") {
			t.Fatalf("buffered %d ops, %d bytes; want 4, %d", b.Ops(), b.Bytes(), len("a1a2b3past"))
		}
		if _, err := s.Get(ctx, "a"); err == nil {
			t.Fatal("a visible before Commit")
		}
		if !exec(t, s, watch(t, s, "a")) {
			t.Fatal("a watcher aborted before the batch committed")
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{"a": "2", "b": "3"} {
			if v, err := s.Get(ctx, k); err != nil || v != want {
				t.Errorf("%s = %q, %v; want %q", k, v, err, want)
			}
		}
		for _, k := range []string{"gone", "past"} {
			if v, err := s.Get(ctx, k); err == nil {
				t.Errorf("%s = %q, want absent", k, v)
			}
		}
		if exec(t, s, w) {
			t.Error("EXEC watching a ran after the batch wrote a")
		}
		if !exec(t, s, wg) {
			t.Error("EXEC watching gone aborted, but the Add writing it failed")
		}
		if b.Ops() != 0 || b.Commit() != nil {
			t.Error("a committed batch is not empty")
		}
	})
}
