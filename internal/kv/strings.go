package kv

import (
	"context"
	"errors"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Errors of the string operations. Their texts are Redis's, so a protocol
// that speaks Redis can prefix them with "ERR " and be byte-exact.
var (
	ErrNotInteger     = storage.ErrNotInteger
	ErrOverflow       = storage.ErrIncrOverflow
	ErrDecrOverflow   = errors.New("decrement would overflow")
	ErrNotFloat       = errors.New("value is not a valid float")
	ErrNaNOrInfinity  = errors.New("increment would produce NaN or Infinity")
	ErrStringTooLong  = storage.ErrTooLong
	ErrOffsetTooLarge = errors.New("offset is out of range")
)

// SetCondition is SET's NX / XX.
type SetCondition int

const (
	// SetAlways writes whether or not the key exists.
	SetAlways SetCondition = iota
	// SetIfAbsent writes only a missing key (NX).
	SetIfAbsent
	// SetIfPresent writes only an existing key (XX).
	SetIfPresent
)

// SetOptions are SET's options. ExpireAt zero and KeepTTL false write a
// key without expiry.
type SetOptions struct {
	Condition SetCondition
	// Get asks for the previous value (SET ... GET).
	Get bool
	// KeepTTL keeps the existing expiry (KEEPTTL).
	KeepTTL bool
	// ExpireAt is the absolute expiry (EX, PX, EXAT, PXAT resolved).
	ExpireAt time.Time
}

// Blind reports whether a SET with these options writes without reading,
// so it can run through Store.Blind.
func (o SetOptions) Blind() bool {
	return o.Condition == SetAlways && !o.Get && !o.KeepTTL
}

// SetResult is what SET did: Written, and the previous value when asked.
type SetResult struct {
	Written bool
	Old     string
	HadOld  bool
}

// Get returns key's value; ok is false when it is absent or expired.
func (t *Tx) Get(key string) (value string, ok bool, err error) {
	return t.readValue(key)
}

// Set writes key = value under opts (Redis SET).
func (t *Tx) Set(key, value string, opts SetOptions) (SetResult, error) {
	var res SetResult
	expireAt := opts.ExpireAt
	if !opts.Blind() {
		old, m, ok, err := t.read(key)
		if err != nil {
			return res, err
		}
		res.Old, res.HadOld = old, ok
		if (opts.Condition == SetIfAbsent && ok) || (opts.Condition == SetIfPresent && !ok) {
			return res, nil
		}
		if opts.KeepTTL && ok {
			expireAt = m.ExpiresAt
		}
	}
	if err := t.write(key, value, expireAt); err != nil {
		return res, err
	}
	res.Written = true
	return res, nil
}

// GetDel returns key's value and deletes it (Redis GETDEL).
func (t *Tx) GetDel(key string) (string, bool, error) {
	v, ok, err := t.readValue(key)
	if err != nil || !ok {
		return "", false, err
	}
	return v, true, t.remove(key)
}

// ExpiryChange is GETEX's option: leave the expiry, set it, or remove it.
type ExpiryChange struct {
	Set     bool
	At      time.Time // with Set: the new absolute expiry
	Persist bool
}

// GetEx returns key's value and applies change to its expiry (Redis
// GETEX). An expiry not after now deletes the key, still returning it.
func (t *Tx) GetEx(key string, change ExpiryChange) (string, bool, error) {
	if !change.Set && !change.Persist {
		return t.readValue(key)
	}
	v, m, ok, err := t.read(key)
	if err != nil || !ok {
		return "", false, err
	}
	switch {
	case change.Set && !change.At.After(t.now):
		err = t.remove(key)
	case change.Set:
		err = t.write(key, v, change.At)
	case !m.ExpiresAt.IsZero():
		err = t.write(key, v, time.Time{})
	}
	return v, true, err
}

// IncrBy adds delta to the integer in key (0 when missing), keeping its
// expiry, and returns the result (Redis INCRBY and family).
func (t *Tx) IncrBy(key string, delta int64) (int64, error) {
	v, m, ok, err := t.read(key)
	if err != nil {
		return 0, err
	}
	var cur int64
	if ok {
		n, valid := ParseInt(v)
		if !valid {
			return 0, ErrNotInteger
		}
		cur = n
	}
	n, ok := storage.AddInt64(cur, delta)
	if !ok {
		return 0, ErrOverflow
	}
	return n, t.write(key, strconv.FormatInt(n, 10), m.ExpiresAt)
}

// IncrBy adds delta to the integer in key (0 when missing), keeping its
// expiry, and returns the result (Redis INCRBY and family), as one commit.
// On an engine that evaluates updates in place (storage.Updater) that is
// one engine call, which concurrent increments of a key share group
// commits through; otherwise a transaction (Tx.IncrBy) under Update.
func (s *Store) IncrBy(ctx context.Context, key string, delta int64) (int64, error) {
	if u, ok := s.engine.(storage.Updater); ok {
		n, err := u.IncrBy(ctx, key, delta)
		if err == nil {
			s.TouchKeys(key)
		}
		return n, err
	}
	var n int64
	err := s.Update(ctx, []string{key}, func(tx *Tx) (err error) {
		n, err = tx.IncrBy(key, delta)
		return err
	})
	return n, err
}

// Append appends suffix to key's value (creating it), keeping its expiry,
// and returns the new length (Redis APPEND), as one commit: in place on a
// storage.Updater engine, else as Tx.Append under Update.
func (s *Store) Append(ctx context.Context, key, suffix string, maxLen int) (int, error) {
	if u, ok := s.engine.(storage.Updater); ok {
		n, err := u.Append(ctx, key, suffix, maxLen)
		if err == nil {
			s.TouchKeys(key)
		}
		return n, err
	}
	var n int
	err := s.Update(ctx, []string{key}, func(tx *Tx) (err error) {
		n, err = tx.Append(key, suffix, maxLen)
		return err
	})
	return n, err
}

// IncrByFloat adds delta to the number in key (0 when missing), keeping
// its expiry, and returns the stored text (Redis INCRBYFLOAT). Arithmetic
// is in 64-bit-mantissa binary floating point, Redis's long double on
// x86-64, so results print as Redis prints them.
func (t *Tx) IncrByFloat(key string, delta *big.Float) (string, error) {
	v, m, ok, err := t.read(key)
	if err != nil {
		return "", err
	}
	cur := NewLongDouble()
	if ok {
		if cur, ok = ParseLongDouble(v); !ok {
			return "", ErrNotFloat
		}
	}
	if cur.IsInf() || delta.IsInf() {
		return "", ErrNaNOrInfinity
	}
	sum := NewLongDouble().Add(cur, delta)
	if sum.MantExp(nil) > longDoubleMaxExp {
		return "", ErrNaNOrInfinity
	}
	text := FormatLongDouble(sum)
	return text, t.write(key, text, m.ExpiresAt)
}

// longDoubleMaxExp is the binary exponent above which an x87 long double
// overflows to infinity.
const longDoubleMaxExp = 16384

// longDoubleMinExp is the binary exponent below which a long double
// (denormals included) underflows to zero.
const longDoubleMinExp = -16444

// NewLongDouble returns a zero with a long double's precision.
func NewLongDouble() *big.Float { return new(big.Float).SetPrec(64) }

// ParseLongDouble reads a number as strtold does for Redis: decimal or
// hexadecimal, optional sign and exponent, "inf"/"infinity"; no spaces, no
// NaN, at most 5 KiB.
func ParseLongDouble(s string) (*big.Float, bool) {
	if s == "" || len(s) >= 5*1024 || strings.ContainsAny(s, "_ \t\r\n\v\f") {
		return nil, false
	}
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 {
		return nil, false
	}
	switch lower := strings.ToLower(body); {
	case lower == "inf" || lower == "infinity":
		return NewLongDouble().SetInf(s[0] == '-'), true
	case strings.HasPrefix(lower, "0b") || strings.HasPrefix(lower, "0o"):
		return nil, false
	}
	f, _, err := big.ParseFloat(s, 0, 64, big.ToNearestEven)
	if err != nil {
		return nil, false
	}
	// strtold overflows to infinity, or underflows to zero, beyond a long
	// double's exponent range; Redis refuses both.
	if exp := f.MantExp(nil); exp > longDoubleMaxExp || (f.Sign() != 0 && exp < longDoubleMinExp) {
		return nil, false
	}
	return f, true
}

// FormatLongDouble prints f as Redis prints INCRBYFLOAT results: fixed
// point with 17 decimals, trailing zeros and a trailing dot removed.
func FormatLongDouble(f *big.Float) string {
	s := f.Text('f', 17)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// ParseInt reads a 64-bit integer exactly as Redis's string2ll does: no
// spaces, no '+', no leading zeros, no "-0", at most 20 characters.
func ParseInt(s string) (int64, bool) { return storage.ParseInt(s) }

// Append appends suffix to key's value (creating it), keeping its expiry,
// and returns the new length (Redis APPEND).
func (t *Tx) Append(key, suffix string, maxLen int) (int, error) {
	v, m, _, err := t.read(key)
	if err != nil {
		return 0, err
	}
	if len(v)+len(suffix) > maxLen {
		return 0, ErrStringTooLong
	}
	v += suffix
	return len(v), t.write(key, v, m.ExpiresAt)
}

// SetRange overwrites key's value from offset with part, zero-padding a
// shorter value, keeping its expiry, and returns the new length (Redis
// SETRANGE). An empty part writes nothing.
func (t *Tx) SetRange(key string, offset int64, part string, maxLen int) (int, error) {
	if offset < 0 {
		return 0, ErrOffsetTooLarge
	}
	v, m, ok, err := t.read(key)
	if err != nil {
		return 0, err
	}
	if part == "" {
		return len(v), nil
	}
	if offset+int64(len(part)) > int64(maxLen) {
		return 0, ErrStringTooLong
	}
	end := int(offset) + len(part)
	b := []byte(v)
	if end > len(b) {
		b = append(b, make([]byte, end-len(b))...)
	}
	copy(b[offset:], part)
	if !ok {
		m.ExpiresAt = time.Time{}
	}
	return len(b), t.write(key, string(b), m.ExpiresAt)
}

// GetRange returns the substring of key's value from start to end
// inclusive, negative offsets counting from the end (Redis GETRANGE).
func (t *Tx) GetRange(key string, start, end int64) (string, error) {
	v, _, err := t.readValue(key)
	if err != nil {
		return "", err
	}
	n := int64(len(v))
	if start < 0 && end < 0 && start > end {
		return "", nil
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), max(end, 0)
	if end >= n {
		end = n - 1
	}
	if start > end || n == 0 {
		return "", nil
	}
	return v[start : end+1], nil
}

// MSet writes every pair with no expiry, in the one commit of its Tx
// (Redis MSET). pairs alternate keys and values.
func (t *Tx) MSet(pairs []string) error {
	if t.blind {
		t.ops = slices.Grow(t.ops, len(pairs)/2)
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := t.write(pairs[i], pairs[i+1], time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

// MSetNX writes every pair only when none of the keys exists (Redis MSETNX).
func (t *Tx) MSetNX(pairs []string) (bool, error) {
	for i := 0; i < len(pairs); i += 2 {
		_, ok, err := t.readValue(pairs[i])
		if err != nil {
			return false, err
		}
		if ok {
			return false, nil
		}
	}
	return true, t.MSet(pairs)
}
