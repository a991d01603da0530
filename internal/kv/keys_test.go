package kv

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRenameCopy(t *testing.T) {
	s := newTestStore(t)
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("a", "1", SetOptions{ExpireAt: at}); return err })
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("b", "2", SetOptions{}); return err })
	var ok bool
	update(t, s, nil, func(tx *Tx) (err error) { ok, err = tx.Rename("a", "b", true); return err })
	if ok {
		t.Fatal("RENAMENX over an existing key")
	}
	update(t, s, nil, func(tx *Tx) (err error) { ok, err = tx.Rename("a", "c", false); return err })
	var exp time.Time
	update(t, s, nil, func(tx *Tx) (err error) { exp, _, err = tx.Expiry("c"); return err })
	if _, had := value(t, s, "a"); had || !ok || !exp.Equal(at) {
		t.Fatalf("RENAME a c: source left %v, expiry %v", had, exp)
	}
	if err := s.Update(t.Context(), nil, func(tx *Tx) error { _, err := tx.Rename("zz", "c", false); return err }); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("RENAME of a missing key: %v", err)
	}
	if err := s.Update(t.Context(), nil, func(tx *Tx) error { _, err := tx.Copy("c", "c", false); return err }); !errors.Is(err, ErrSameObject) {
		t.Fatalf("COPY c c: %v", err)
	}
	update(t, s, nil, func(tx *Tx) (err error) { ok, err = tx.Copy("c", "b", false); return err })
	if ok {
		t.Fatal("COPY over an existing key without REPLACE")
	}
	update(t, s, nil, func(tx *Tx) (err error) { ok, err = tx.Copy("c", "b", true); return err })
	if v, _ := value(t, s, "b"); !ok || v != "1" {
		t.Fatalf("COPY REPLACE: %v %q", ok, v)
	}
}

// TestTxScansSeeOwnWrites: KEYS, DBSIZE and SCAN inside one Tx see its
// uncommitted writes and deletes (MULTI; SET; DBSIZE; EXEC).
func TestTxScansSeeOwnWrites(t *testing.T) {
	s := newTestStore(t)
	update(t, s, nil, func(tx *Tx) error { return tx.MSet([]string{"a", "1", "c", "3", "e", "5"}) })
	update(t, s, []string{"b", "c"}, func(tx *Tx) error {
		if _, err := tx.Set("b", "2", SetOptions{}); err != nil {
			return err
		}
		if _, err := tx.Del([]string{"c"}); err != nil {
			return err
		}
		keys, err := tx.Keys(t.Context(), "*")
		if err != nil {
			return err
		}
		if !slices.Equal(keys, []string{"a", "b", "e"}) {
			t.Errorf("KEYS inside the Tx = %q", keys)
		}
		n, err := tx.DBSize(t.Context())
		if n != 3 {
			t.Errorf("DBSIZE inside the Tx = %d", n)
		}
		return err
	})
}

func TestFlushAllOneCommit(t *testing.T) {
	s := newTestStore(t)
	update(t, s, nil, func(tx *Tx) error { return tx.MSet([]string{"a", "1", "b", "2"}) })
	var n int
	if err := s.Blind(t.Context(), func(tx *Tx) (err error) { n, err = tx.FlushAll(t.Context()); return err }); err != nil {
		t.Fatal(err)
	}
	var size int64
	update(t, s, nil, func(tx *Tx) (err error) { size, err = tx.DBSize(t.Context()); return err })
	if n != 2 || size != 0 {
		t.Fatalf("FLUSHALL deleted %d, %d left", n, size)
	}
}

func TestMatchGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"h?llo", "hello", true}, {"h?llo", "hllo", false},
		{"h*llo", "heeeello", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false}, {"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, {`h\*llo`, "h*llo", true}, {`h\*llo`, "hello", false},
		{"k[13]", "k3", true}, {"user:*", "user:1", true}, {"user:*", "use", false}, {"a*b*c", "aXbYc", true},
	} {
		if got := MatchGlob(c.pattern, c.s); got != c.want {
			t.Errorf("MatchGlob(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
}

// KEYS keeps every key past the iterator's later steps (an engine may
// lend keys from a buffer its next step reuses, as the Rust engine does).
func TestKeysKeepCopiesOfIteratorViews(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		var want []string
		for i := range 300 {
			k := fmt.Sprintf("key:%04d:%s", i, strings.Repeat("k", i%40))
			want = append(want, k)
			if err := s.Put(t.Context(), k, "v", 0); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		if err := s.View(t.Context(), func(tx *Tx) (err error) { got, err = tx.Keys(t.Context(), "*"); return err }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("key %d = %q, want %q", i, got[i], want[i])
				}
			}
			t.Fatalf("%d keys, want %d", len(got), len(want))
		}
	})
}
