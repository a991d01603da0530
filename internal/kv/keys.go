package kv

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
)

// Errors of the key operations, in Redis's words.
var (
	ErrNoSuchKey  = errors.New("no such key")
	ErrSameObject = errors.New("source and destination objects are the same")
)

// Del deletes keys and returns how many existed (Redis DEL, UNLINK).
func (t *Tx) Del(keys []string) (int, error) {
	n := 0
	for _, k := range keys {
		_, ok, err := t.readValue(k)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
			if err := t.remove(k); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// Exists counts the keys that exist, a key named twice counting twice
// (Redis EXISTS, TOUCH).
func (t *Tx) Exists(keys []string) (int, error) {
	n := 0
	for _, k := range keys {
		_, ok, err := t.readValue(k)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// Type is "string" for an existing key, "none" otherwise (Redis TYPE):
// strings are the only type so far.
func (t *Tx) Type(key string) (string, error) {
	_, ok, err := t.readValue(key)
	if err != nil || !ok {
		return "none", err
	}
	return "string", nil
}

// Rename moves src's value and expiry to dst (Redis RENAME; RENAMENX with
// onlyIfAbsent) and reports whether it did. A missing src is ErrNoSuchKey.
func (t *Tx) Rename(src, dst string, onlyIfAbsent bool) (bool, error) {
	v, m, ok, err := t.read(src)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, ErrNoSuchKey
	}
	if src == dst {
		return !onlyIfAbsent, nil
	}
	if onlyIfAbsent {
		if _, exists, err := t.readValue(dst); err != nil || exists {
			return false, err
		}
	}
	if err := t.remove(src); err != nil {
		return false, err
	}
	return true, t.write(dst, v, m.ExpiresAt)
}

// Copy copies src's value and expiry to dst, over an existing dst only
// with replace, and reports whether it did (Redis COPY).
func (t *Tx) Copy(src, dst string, replace bool) (bool, error) {
	if src == dst {
		return false, ErrSameObject
	}
	v, m, ok, err := t.read(src)
	if err != nil || !ok {
		return false, err
	}
	if !replace {
		if _, exists, err := t.readValue(dst); err != nil || exists {
			return false, err
		}
	}
	return true, t.write(dst, v, m.ExpiresAt)
}

// eachKey calls fn for every visible key in order, from the newest commit
// merged with this Tx's own writes, until fn returns false. The keys are
// fn's to keep: each is copied out of the iterator, whose own dies at its
// next step.
func (t *Tx) eachKey(ctx context.Context, start string, fn func(key string) bool) error {
	it, err := t.s.engine.NewRangeIterator(ctx, start, "")
	if err != nil {
		return err
	}
	defer it.Close()
	// Keys this Tx wrote, in order, merged into the engine's walk.
	var own []string
	for k := range t.written {
		if k >= start {
			own = append(own, k)
		}
	}
	slices.Sort(own)
	emitOwn := func(upTo string, inclusive bool) bool {
		for len(own) > 0 && (own[0] < upTo || (inclusive && own[0] == upTo)) {
			k := own[0]
			own = own[1:]
			if t.written[k] && !fn(k) {
				return false
			}
		}
		return true
	}
	for it.Next() {
		k := strings.Clone(it.Key())
		if len(own) > 0 && own[0] <= k {
			if !emitOwn(k, false) {
				return nil
			}
			if len(own) > 0 && own[0] == k {
				own = own[1:]
				if !t.written[k] {
					continue
				}
			}
		}
		if !fn(k) {
			return nil
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	for _, k := range own {
		if t.written[k] && !fn(k) {
			return nil
		}
	}
	return nil
}

// DBSize counts the visible keys by walking them: exact (expired keys are
// skipped) at O(keys) cost.
func (t *Tx) DBSize(ctx context.Context) (int64, error) {
	var n int64
	err := t.eachKey(ctx, "", func(string) bool { n++; return true })
	return n, err
}

// KeyspaceInfo counts the visible keys and those with an expiry, for INFO
// keyspace: O(keys) reads.
func (t *Tx) KeyspaceInfo(ctx context.Context) (keys, expiring int64, err error) {
	err = t.eachKey(ctx, "", func(k string) bool {
		keys++
		_, m, found, rerr := t.read(k)
		switch {
		case rerr != nil:
			err = rerr
			return false
		case found && !m.ExpiresAt.IsZero():
			expiring++
		}
		return true
	})
	return keys, expiring, err
}

// Keys returns every visible key matching the glob pattern, in key order
// (Redis KEYS).
func (t *Tx) Keys(ctx context.Context, pattern string) ([]string, error) {
	var out []string
	all := pattern == "*"
	err := t.eachKey(ctx, "", func(k string) bool {
		if all || MatchGlob(pattern, k) {
			out = append(out, k)
		}
		return true
	})
	return out, err
}

// RandomKey returns a visible key, or ok false when there is none (Redis
// RANDOMKEY): the first key at or after a random byte string, wrapping to
// the first key. Keys after a wide gap in key space come up more often
// than others; Redis's choice is not uniform either.
func (t *Tx) RandomKey(ctx context.Context) (string, bool, error) {
	probe := make([]byte, 8)
	for i := range probe {
		probe[i] = byte(rand.UintN(256))
	}
	for _, start := range []string{string(probe), ""} {
		var key string
		found := false
		err := t.eachKey(ctx, start, func(k string) bool { key, found = k, true; return false })
		if err != nil || found {
			return key, found, err
		}
	}
	return "", false, nil
}

// FlushAll deletes every visible key in this Tx's one commit (Redis
// FLUSHDB, FLUSHALL) and returns how many it deleted. A key created
// while the keys are listed survives, as if created just after.
func (t *Tx) FlushAll(ctx context.Context) (int, error) {
	var keys []string
	if err := t.eachKey(ctx, "", func(k string) bool { keys = append(keys, k); return true }); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := t.remove(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
