package kv

import (
	"testing"
	"time"
)

// TestExpireConditions walks EXPIRE's NX/XX/GT/LT rules, combined as
// flags, on a key without and with an expiry.
func TestExpireConditions(t *testing.T) {
	s := newTestStore(t)
	now := time.Now()
	soon, later := now.Add(time.Hour).Truncate(time.Millisecond), now.Add(2*time.Hour).Truncate(time.Millisecond)
	expire := func(at time.Time, cond ExpireCondition) bool {
		t.Helper()
		var done bool
		update(t, s, []string{"k"}, func(tx *Tx) (err error) { done, err = tx.Expire("k", at, cond); return err })
		return done
	}
	if expire(soon, ExpireAlways) {
		t.Fatal("EXPIRE on a missing key applied")
	}
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("k", "v", SetOptions{}); return err })
	// No expiry yet: XX and GT fail, LT and NX apply (no expiry is "never").
	for _, c := range []struct {
		cond ExpireCondition
		want bool
	}{{ExpireIfSet, false}, {ExpireIfLater, false}, {ExpireIfSet | ExpireIfEarlier, false}} {
		if got := expire(soon, c.cond); got != c.want {
			t.Fatalf("cond %b on a key without expiry = %v", c.cond, got)
		}
	}
	if !expire(later, ExpireIfEarlier) {
		t.Fatal("LT on a key without expiry did not apply")
	}
	if expire(soon, ExpireIfNone) {
		t.Fatal("NX applied on a key with an expiry")
	}
	if expire(later, ExpireIfEarlier) || !expire(soon, ExpireIfEarlier) {
		t.Fatal("LT compared wrongly")
	}
	if expire(soon, ExpireIfLater) || !expire(later, ExpireIfSet|ExpireIfLater) {
		t.Fatal("XX GT compared wrongly")
	}
	var ttl int64
	update(t, s, nil, func(tx *Tx) (err error) { ttl, err = tx.RemainingTTL("k", false); return err })
	if ttl < 7199 || ttl > 7200 {
		t.Fatalf("TTL = %d, want 7200", ttl)
	}
	// A past expiry deletes the key and counts as applied.
	if !expire(now.Add(-time.Second), ExpireAlways) {
		t.Fatal("a past expiry did not apply")
	}
	update(t, s, nil, func(tx *Tx) (err error) { ttl, err = tx.RemainingTTL("k", true); return err })
	if ttl != -2 {
		t.Fatalf("PTTL after a past expiry = %d, want -2", ttl)
	}
}

// TestTTLRounding: TTL rounds half up to seconds as Redis does.
func TestTTLRounding(t *testing.T) {
	s := newTestStore(t)
	now := time.Now()
	s.now = func() time.Time { return now }
	for _, c := range []struct {
		left time.Duration
		want int64
	}{{1499 * time.Millisecond, 1}, {1500 * time.Millisecond, 2}, {400 * time.Millisecond, 0}, {10 * time.Second, 10}} {
		update(t, s, nil, func(tx *Tx) error {
			_, err := tx.Set("k", "v", SetOptions{ExpireAt: now.Add(c.left)})
			return err
		})
		var ttl int64
		update(t, s, nil, func(tx *Tx) (err error) { ttl, err = tx.RemainingTTL("k", false); return err })
		if ttl != c.want {
			t.Errorf("TTL with %v left = %d, want %d", c.left, ttl, c.want)
		}
	}
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("p", "v", SetOptions{}); return err })
	var ttl int64
	update(t, s, nil, func(tx *Tx) (err error) { ttl, err = tx.RemainingTTL("p", false); return err })
	if ttl != -1 {
		t.Fatalf("TTL without expiry = %d", ttl)
	}
	var had bool
	update(t, s, nil, func(tx *Tx) (err error) { had, err = tx.Persist("p"); return err })
	if had {
		t.Fatal("PERSIST of a key without expiry reported 1")
	}
}
