package kv

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// scanCursorToEnd runs a SCAN to completion and returns the keys in order of return.
func scanCursorToEnd(t *testing.T, s *Store, opts ScanOptions) []string {
	t.Helper()
	var out []string
	cursor := uint64(0)
	for range 1_000_000 {
		var keys []string
		if err := s.View(t.Context(), func(tx *Tx) (err error) { cursor, keys, err = tx.Scan(t.Context(), cursor, opts); return err }); err != nil {
			t.Fatal(err)
		}
		out = append(out, keys...)
		if cursor == 0 {
			return out
		}
	}
	t.Fatal("scan did not end")
	return nil
}

// TestScanDuringWrites: keys present for the whole scan are returned
// exactly once while others are added and deleted.
func TestScanDuringWrites(t *testing.T) {
	s := newTestStore(t)
	var stable []string
	update(t, s, nil, func(tx *Tx) error {
		for i := range 500 {
			k := fmt.Sprintf("s%04d", i)
			stable = append(stable, k)
			if err := tx.MSet([]string{k, "v"}); err != nil {
				return err
			}
		}
		return nil
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprintf("s%04d-%d", i%500, i)
			_ = s.Update(t.Context(), []string{k}, func(tx *Tx) error { return tx.MSet([]string{k, "x"}) })
			_ = s.Update(t.Context(), []string{k}, func(tx *Tx) error { _, err := tx.Del([]string{k}); return err })
		}
	}()
	got := scanCursorToEnd(t, s, ScanOptions{Count: 7})
	close(stop)
	wg.Wait()
	var seen []string
	for _, k := range got {
		if len(k) == 5 {
			seen = append(seen, k)
		}
	}
	if !slices.Equal(seen, stable) {
		t.Fatalf("scan returned %d of the %d stable keys (or some twice)", len(seen), len(stable))
	}
}

func TestScanExpiredAndUnknownCursor(t *testing.T) {
	s := newTestStore(t)
	update(t, s, nil, func(tx *Tx) error {
		if _, err := tx.Set("gone", "v", SetOptions{ExpireAt: time.Now().Add(20 * time.Millisecond)}); err != nil {
			return err
		}
		return tx.MSet([]string{"a", "1", "b", "2"})
	})
	time.Sleep(40 * time.Millisecond)
	if got := scanCursorToEnd(t, s, ScanOptions{Count: 1}); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("scan = %q", got)
	}
	err := s.View(t.Context(), func(tx *Tx) error { _, _, err := tx.Scan(t.Context(), 42, ScanOptions{}); return err })
	if !errors.Is(err, ErrUnknownCursor) {
		t.Fatalf("unknown cursor: %v", err)
	}
}

// TestCursorTableBounds: the table forgets idle cursors and keeps at most
// its limit.
func TestCursorTableBounds(t *testing.T) {
	c := newCursorTable(3, time.Minute)
	now := time.Now()
	ids := []uint64{c.issue("a", now), c.issue("b", now.Add(time.Second)), c.issue("c", now.Add(2*time.Second))}
	d := c.issue("d", now.Add(3*time.Second))
	if _, ok := c.lookup(ids[0], now.Add(3*time.Second)); ok {
		t.Fatal("the least recently used cursor survived a full table")
	}
	if after, ok := c.lookup(d, now.Add(4*time.Second)); !ok || after != "d" {
		t.Fatal("the newest cursor is gone")
	}
	if _, ok := c.lookup(ids[1], now.Add(2*time.Minute)); ok {
		t.Fatal("an idle cursor survived its idle time")
	}
	for _, id := range ids {
		if id == 0 || id >= 1<<63 {
			t.Fatalf("cursor %d is not in 1..2^63-1", id)
		}
	}
}
