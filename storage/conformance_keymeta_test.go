package storage

import (
	"errors"
	"testing"
	"time"
)

func mustMeta(t *testing.T, e StorageEngine, k, wantValue string) KeyMeta {
	t.Helper()
	v, m, err := e.GetWithMeta(t.Context(), k)
	if err != nil {
		t.Fatalf("GetWithMeta(%q): %v", k, err)
	}
	if v != wantValue {
		t.Fatalf("GetWithMeta(%q) = %q, want %q", k, short(v), short(wantValue))
	}
	return m
}

func wantMetaMissing(t *testing.T, e StorageEngine, k string) {
	t.Helper()
	if _, _, err := e.GetWithMeta(t.Context(), k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetWithMeta(%q): %v, want ErrNotFound", k, err)
	}
}

// wantExpiry checks an expiry against want at the engines' millisecond resolution.
func wantExpiry(t *testing.T, what string, got, want time.Time, slack time.Duration) {
	t.Helper()
	if got.IsZero() || got.Before(want.Add(-slack-time.Millisecond)) || got.After(want.Add(slack+time.Millisecond)) {
		t.Fatalf("%s: expiry %v, want %v (±%v)", what, got, want, slack)
	}
}

func testKeyMeta(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	wantMetaMissing(t, e, "k")
	mustPut(t, e, "k", "v")
	m1 := mustMeta(t, e, "k", "v")
	if m1.Version == 0 || !m1.ExpiresAt.IsZero() {
		t.Fatalf("meta after Put = %+v, want a version and no expiry", m1)
	}
	// Another key's write leaves k's version alone.
	mustPut(t, e, "other", "x")
	if m := mustMeta(t, e, "k", "v"); m.Version != m1.Version {
		t.Fatalf("version moved from %d to %d on another key's write", m1.Version, m.Version)
	}
	// The same value written again is a new version.
	mustPut(t, e, "k", "v")
	m2 := mustMeta(t, e, "k", "v")
	if m2.Version <= m1.Version {
		t.Fatalf("version after rewriting the same value = %d, want > %d", m2.Version, m1.Version)
	}
	start := time.Now()
	noErr(t, "PutWithTTL", e.PutWithTTL(ctx, "k", "w", time.Hour))
	m3 := mustMeta(t, e, "k", "w")
	wantExpiry(t, "PutWithTTL", m3.ExpiresAt, start.Add(time.Hour), time.Since(start))
	if m3.Version <= m2.Version {
		t.Fatalf("version after PutWithTTL = %d, want > %d", m3.Version, m2.Version)
	}
	// A batch gives its keys one version.
	noErr(t, "Write", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "a", Value: "1"}, {Kind: OpPut, Key: "b", Value: "2"}}))
	if ma, mb := mustMeta(t, e, "a", "1"), mustMeta(t, e, "b", "2"); ma.Version != mb.Version || ma.Version <= m3.Version {
		t.Fatalf("batch versions %d and %d, want one version above %d", ma.Version, mb.Version, m3.Version)
	}
	mustDelete(t, e, "k")
	wantMetaMissing(t, e, "k")
	noErr(t, "PutWithTTL", e.PutWithTTL(ctx, "short", "s", 50*time.Millisecond))
	time.Sleep(80 * time.Millisecond)
	wantMetaMissing(t, e, "short")
	if _, _, err := e.GetWithMeta(ctx, ""); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("GetWithMeta of the empty key: %v, want ErrInvalidKey", err)
	}
}

func testKeyMetaExpireAt(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	noErr(t, "Write ExpireAt", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "k", Value: "v", ExpireAt: at}}))
	if m := mustMeta(t, e, "k", "v"); !m.ExpiresAt.Equal(at) {
		t.Fatalf("ExpiresAt = %v, want %v", m.ExpiresAt, at)
	}
	wantValue(t, e, "k", "v")
	// An expiry in the past removes the key, as a delete would.
	mustPut(t, e, "gone", "old")
	noErr(t, "Write past ExpireAt", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "gone", Value: "new", ExpireAt: time.Now().Add(-time.Second)}}))
	wantMissing(t, e, "gone")
	wantMetaMissing(t, e, "gone")
	wantPairs(t, "scan after a past ExpireAt", scanPrefix(t, e, "gone"), nil)
	noErr(t, "Write ExpireAt before 1970", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "old", Value: "v", ExpireAt: time.Unix(-5, 0)}}))
	wantMissing(t, e, "old")
	// A short absolute expiry passes like a TTL (long enough for a
	// replicated write and read under load).
	noErr(t, "Write soon", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "soon", Value: "v", ExpireAt: time.Now().Add(400 * time.Millisecond)}}))
	wantValue(t, e, "soon", "v")
	time.Sleep(500 * time.Millisecond)
	wantMissing(t, e, "soon")
	err := e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "both", Value: "v", TTL: time.Second, ExpireAt: at}})
	wantErr(t, "TTL and ExpireAt together", err, ErrInvalidArgument)
	wantMissing(t, e, "both")
}

func testTxnKeyMeta(t *testing.T, e StorageEngine) {
	mustPut(t, e, "k", "v")
	want := mustMeta(t, e, "k", "v")

	tx := begin(t, e)
	v, m, err := tx.GetWithMeta("k")
	if err != nil || v != "v" || m != want {
		t.Fatalf("txn GetWithMeta = %q, %+v, %v; want v, %+v", v, m, err, want)
	}
	if _, _, err := tx.GetWithMeta("absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("txn GetWithMeta of a missing key: %v", err)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	noErr(t, "PutWithExpiry", tx.PutWithExpiry("n", "x", at))
	if v, m, err := tx.GetWithMeta("n"); err != nil || v != "x" || !m.ExpiresAt.Equal(at) || m.Version != 0 {
		t.Fatalf("own write = %q, %+v, %v; want x expiring at %v with version 0", v, m, err, at)
	}
	noErr(t, "Commit", tx.Commit())
	if m := mustMeta(t, e, "n", "x"); !m.ExpiresAt.Equal(at) || m.Version <= want.Version {
		t.Fatalf("committed meta %+v, want expiry %v and a version above %d", m, at, want.Version)
	}

	// GetWithMeta joins the read set: a write of the key after the
	// transaction began fails its commit.
	tx = begin(t, e)
	if _, _, err := tx.GetWithMeta("k"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, e, "k", "v")
	noErr(t, "Put", tx.Put("elsewhere", "1"))
	wantErr(t, "Commit after a read key was rewritten", tx.Commit(), ErrConflict)
	wantMissing(t, e, "elsewhere")

	// Zero is no expiry; a past expiry removes the key at commit.
	tx = begin(t, e)
	noErr(t, "PutWithExpiry zero", tx.PutWithExpiry("plain", "p", time.Time{}))
	noErr(t, "PutWithExpiry past", tx.PutWithExpiry("k", "late", time.Now().Add(-time.Second)))
	if _, _, err := tx.GetWithMeta("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("own write with a past expiry: %v, want ErrNotFound", err)
	}
	noErr(t, "Commit", tx.Commit())
	if m := mustMeta(t, e, "plain", "p"); !m.ExpiresAt.IsZero() {
		t.Fatalf("PutWithExpiry(zero) expires at %v", m.ExpiresAt)
	}
	wantMissing(t, e, "k")
}
