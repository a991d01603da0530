package kv

import (
	"errors"
	"testing"
	"time"
)

func TestSetConditionsAndGet(t *testing.T) {
	s := newTestStore(t)
	set := func(key, val string, o SetOptions) SetResult {
		t.Helper()
		var r SetResult
		update(t, s, []string{key}, func(tx *Tx) (err error) { r, err = tx.Set(key, val, o); return err })
		return r
	}
	if r := set("k", "1", SetOptions{Condition: SetIfPresent}); r.Written {
		t.Fatal("XX wrote a missing key")
	}
	if r := set("k", "1", SetOptions{Condition: SetIfAbsent, Get: true}); !r.Written || r.HadOld {
		t.Fatalf("NX GET on a missing key = %+v", r)
	}
	if r := set("k", "2", SetOptions{Condition: SetIfAbsent, Get: true}); r.Written || r.Old != "1" {
		t.Fatalf("NX GET on an existing key = %+v", r)
	}
	if r := set("k", "3", SetOptions{Condition: SetIfPresent, Get: true}); !r.Written || r.Old != "1" {
		t.Fatalf("XX GET = %+v", r)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	set("k", "4", SetOptions{ExpireAt: at})
	set("k", "5", SetOptions{KeepTTL: true})
	var got time.Time
	update(t, s, nil, func(tx *Tx) (err error) { got, _, err = tx.Expiry("k"); return err })
	if !got.Equal(at) {
		t.Fatalf("KEEPTTL kept %v, want %v", got, at)
	}
	set("k", "6", SetOptions{})
	update(t, s, nil, func(tx *Tx) (err error) { got, _, err = tx.Expiry("k"); return err })
	if !got.IsZero() {
		t.Fatalf("a plain SET left expiry %v", got)
	}
}

func TestIncr(t *testing.T) {
	s := newTestStore(t)
	incr := func(key string, d int64) (int64, error) {
		var n int64
		err := s.Update(t.Context(), []string{key}, func(tx *Tx) (err error) { n, err = tx.IncrBy(key, d); return err })
		return n, err
	}
	if n, err := incr("n", 5); n != 5 || err != nil {
		t.Fatalf("INCRBY on a missing key = %d, %v", n, err)
	}
	if n, err := incr("n", -7); n != -2 || err != nil {
		t.Fatalf("INCRBY -7 = %d, %v", n, err)
	}
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("big", "9223372036854775807", SetOptions{}); return err })
	if _, err := incr("big", 1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("overflow: %v", err)
	}
	for _, bad := range []string{"abc", " 1", "01", "-0", "+1", "1.0", "", "99999999999999999999"} {
		update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("bad", bad, SetOptions{}); return err })
		if _, err := incr("bad", 1); !errors.Is(err, ErrNotInteger) {
			t.Fatalf("INCR of %q: %v", bad, err)
		}
	}
	// The expiry survives an increment.
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("ttl", "1", SetOptions{ExpireAt: at}); return err })
	if _, err := incr("ttl", 1); err != nil {
		t.Fatal(err)
	}
	var got time.Time
	update(t, s, nil, func(tx *Tx) (err error) { got, _, err = tx.Expiry("ttl"); return err })
	if !got.Equal(at) {
		t.Fatalf("INCR changed the expiry to %v", got)
	}
}

// TestIncrByFloatFormatting: results print as Redis (long double, %.17Lf,
// trailing zeros cut) prints them.
func TestIncrByFloatFormatting(t *testing.T) {
	cases := []struct{ start, delta, want string }{
		{"", "0.1", "0.1"},
		{"10.50", "0.1", "10.6"},
		{"5.0e3", "2.0e2", "5200"},
		{"3", "-3", "0"},
		{"", "1e20", "100000000000000000000"},
		{"0.1", "0.2", "0.3"},
		{"-1", "0.5", "-0.5"},
	}
	for _, c := range cases {
		s := newTestStore(t)
		if c.start != "" {
			update(t, s, nil, func(tx *Tx) error { _, err := tx.Set("f", c.start, SetOptions{}); return err })
		}
		d, ok := ParseLongDouble(c.delta)
		if !ok {
			t.Fatalf("ParseLongDouble(%q) failed", c.delta)
		}
		var got string
		update(t, s, []string{"f"}, func(tx *Tx) (err error) { got, err = tx.IncrByFloat("f", d); return err })
		if got != c.want {
			t.Errorf("%q + %q = %q, want %q", c.start, c.delta, got, c.want)
		}
	}
	for _, bad := range []string{"", " 1", "1 ", "nan", "1_0", "0b1", "1e5000", "abc", "--1"} {
		if _, ok := ParseLongDouble(bad); ok {
			t.Errorf("ParseLongDouble(%q) accepted", bad)
		}
	}
	inf, _ := ParseLongDouble("inf")
	s := newTestStore(t)
	err := s.Update(t.Context(), []string{"f"}, func(tx *Tx) error { _, err := tx.IncrByFloat("f", inf); return err })
	if !errors.Is(err, ErrNaNOrInfinity) {
		t.Fatalf("INCRBYFLOAT inf: %v", err)
	}
}

func TestAppendSetRangeGetRange(t *testing.T) {
	s := newTestStore(t)
	var n int
	update(t, s, []string{"s"}, func(tx *Tx) (err error) { n, err = tx.Append("s", "Hello", 100); return err })
	if n != 5 {
		t.Fatalf("APPEND = %d", n)
	}
	update(t, s, []string{"s"}, func(tx *Tx) (err error) { n, err = tx.SetRange("s", 7, "World", 100); return err })
	if v, _ := value(t, s, "s"); n != 12 || v != "Hello\x00\x00World" {
		t.Fatalf("SETRANGE = %d, %q", n, v)
	}
	if err := s.Update(t.Context(), nil, func(tx *Tx) error { _, err := tx.Append("s", "0123456789", 15); return err }); !errors.Is(err, ErrStringTooLong) {
		t.Fatalf("APPEND past the limit: %v", err)
	}
	// SETRANGE with an empty part on a missing key creates nothing.
	update(t, s, nil, func(tx *Tx) (err error) { n, err = tx.SetRange("none", 3, "", 100); return err })
	if _, ok := value(t, s, "none"); ok || n != 0 {
		t.Fatal("an empty SETRANGE created a key")
	}
	for _, c := range []struct {
		start, end int64
		want       string
	}{{0, 4, "Hello"}, {-5, -1, "World"}, {-1, -5, ""}, {5, 100, "\x00\x00World"}, {100, 200, ""}, {-100, 1, "He"}} {
		var got string
		update(t, s, nil, func(tx *Tx) (err error) { got, err = tx.GetRange("s", c.start, c.end); return err })
		if got != c.want {
			t.Errorf("GETRANGE %d %d = %q, want %q", c.start, c.end, got, c.want)
		}
	}
}

func TestMSetNXAllOrNothing(t *testing.T) {
	s := newTestStore(t)
	var ok bool
	update(t, s, []string{"a", "b"}, func(tx *Tx) (err error) { ok, err = tx.MSetNX([]string{"a", "1", "b", "2"}); return err })
	if !ok {
		t.Fatal("MSETNX on missing keys did nothing")
	}
	update(t, s, []string{"b", "c"}, func(tx *Tx) (err error) { ok, err = tx.MSetNX([]string{"c", "3", "b", "9"}); return err })
	if _, exists := value(t, s, "c"); ok || exists {
		t.Fatal("MSETNX wrote although one key existed")
	}
}
