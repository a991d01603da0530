package kv

import (
	"context"
	"errors"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Get returns the value of key, or an error wrapping storage.ErrNotFound
// when the key is absent or expired.
func (s *Store) Get(ctx context.Context, key string) (string, error) {
	return s.engine.Get(ctx, key)
}

// AppendValue appends key's value to dst; ok is false (and dst returned
// as it was) when the key is absent or expired. On an engine that reads
// into the caller's buffer (storage.ValueAppender) it allocates nothing
// when dst has room.
func (s *Store) AppendValue(ctx context.Context, dst []byte, key string) ([]byte, bool, error) {
	if s.appender != nil {
		out, err := s.appender.AppendValue(ctx, dst, key)
		switch {
		case err == nil:
			return out, true, nil
		case errors.Is(err, storage.ErrNotFound):
			return dst, false, nil
		}
		return dst, false, err
	}
	v, err := s.engine.Get(ctx, key)
	switch {
	case err == nil:
		return append(dst, v...), true, nil
	case errors.Is(err, storage.ErrNotFound):
		return dst, false, nil
	}
	return dst, false, err
}

// AppendValues appends the values of keys to dst, back to back, and sets
// lens[i] to the length of key i's value, or -1 when it is absent or
// expired: AppendValue for each key, in one call into the engine where it
// reads many at once (storage.ValuesAppender). On an error the caller
// learns nothing of any key and reads them one by one to answer each.
func (s *Store) AppendValues(ctx context.Context, dst []byte, keys []string, lens []int) ([]byte, error) {
	if s.values != nil {
		return s.values.AppendValues(ctx, dst, keys, lens)
	}
	for i, k := range keys {
		before := len(dst)
		var ok bool
		var err error
		if dst, ok, err = s.AppendValue(ctx, dst, k); err != nil {
			return dst, err
		}
		lens[i] = -1
		if ok {
			lens[i] = len(dst) - before
		}
	}
	return dst, nil
}

// TransientArgs reports whether the engine keeps no reference to the keys
// and values passed to Get, AppendValue, IncrBy and the writes of Blind
// and BlindBatch once they return (storage.TransientArgs): a caller may then
// pass strings that alias a buffer it reuses afterwards, such as a
// protocol's request buffer, instead of copies. Nothing in this package
// keeps them either on those paths.
func (s *Store) TransientArgs() bool { return s.transient }

// GetWithMeta is Get with the key's expiry and version (storage.KeyMeta),
// read together so the expiry belongs to the value returned.
func (s *Store) GetWithMeta(ctx context.Context, key string) (string, storage.KeyMeta, error) {
	return s.engine.GetWithMeta(ctx, key)
}

// Put sets key to value. With ttl above 0 the key expires ttl after the
// write commits (the engines keep whole milliseconds, and a ttl below 1 ms
// is refused); with ttl 0 it never expires, and a put replaces an earlier
// expiry either way. A negative ttl is an error: a protocol that lets a
// client send one decides itself what it means.
func (s *Store) Put(ctx context.Context, key, value string, ttl time.Duration) error {
	var err error
	switch {
	case ttl < 0:
		return invalidf("ttl %v is negative", ttl)
	case ttl > 0:
		err = s.engine.PutWithTTL(ctx, key, value, ttl)
	default:
		err = s.engine.Put(ctx, key, value)
	}
	if err == nil {
		s.TouchKeys(key)
	}
	return err
}

// Delete removes key; removing a missing key succeeds.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.engine.Delete(ctx, key)
}
