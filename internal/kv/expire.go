package kv

import (
	"errors"
	"time"
)

// ExpireCondition is EXPIRE's NX / XX / GT / LT, a set of flags that must
// all hold (XX GT: has an expiry and the new one is later).
type ExpireCondition int

const (
	// ExpireAlways sets the expiry unconditionally.
	ExpireAlways ExpireCondition = 0
	// ExpireIfNone sets it only on a key without expiry (NX).
	ExpireIfNone ExpireCondition = 1 << (iota - 1)
	// ExpireIfSet sets it only on a key with an expiry (XX).
	ExpireIfSet
	// ExpireIfLater sets it only when later than the current one (GT); a
	// key without expiry counts as expiring never, so GT never applies.
	ExpireIfLater
	// ExpireIfEarlier sets it only when earlier than the current one (LT);
	// a key without expiry counts as expiring never, so LT always applies.
	ExpireIfEarlier
)

// ErrNoExpiryMeta is wrapped by the operations that need a key's expiry on
// an engine that cannot report it.
var ErrNoExpiryMeta = errors.New("this engine cannot report key expiry yet")

// Expire sets key's absolute expiry to at under cond and reports whether
// it did (Redis EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT). An expiry not after
// now deletes the key, which counts as done.
func (t *Tx) Expire(key string, at time.Time, cond ExpireCondition) (bool, error) {
	v, m, ok, err := t.read(key)
	if err != nil || !ok {
		return false, err
	}
	cur, has := m.ExpiresAt, !m.ExpiresAt.IsZero()
	if (cond&ExpireIfNone != 0 && has) || (cond&ExpireIfSet != 0 && !has) ||
		(cond&ExpireIfLater != 0 && (!has || !at.After(cur))) ||
		(cond&ExpireIfEarlier != 0 && has && !at.Before(cur)) {
		return false, nil
	}
	if !at.After(t.now) {
		return true, t.remove(key)
	}
	return true, t.write(key, v, at)
}

// Persist removes key's expiry and reports whether it had one (Redis PERSIST).
func (t *Tx) Persist(key string) (bool, error) {
	v, m, ok, err := t.read(key)
	if err != nil || !ok || m.ExpiresAt.IsZero() {
		return false, err
	}
	return true, t.write(key, v, time.Time{})
}

// Expiry returns key's absolute expiry (zero: none); ok is false when the
// key is absent or expired.
func (t *Tx) Expiry(key string) (at time.Time, ok bool, err error) {
	_, m, ok, err := t.read(key)
	return m.ExpiresAt, ok, err
}

// RemainingTTL is what TTL and PTTL answer: -2 for a missing key, -1 for a
// key without expiry, else the time left in milliseconds (ms) or in
// seconds rounded to the nearest (Redis rounds half up).
func (t *Tx) RemainingTTL(key string, ms bool) (int64, error) {
	at, ok, err := t.Expiry(key)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return -2, nil
	case at.IsZero():
		return -1, nil
	}
	left := max(at.UnixMilli()-t.now.UnixMilli(), 0)
	if ms {
		return left, nil
	}
	return (left + 500) / 1000, nil
}
