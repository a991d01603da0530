package kv

import (
	"context"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Get returns the value of key, or an error wrapping storage.ErrNotFound
// when the key is absent or expired.
func (s *Store) Get(ctx context.Context, key string) (string, error) {
	return s.engine.Get(ctx, key)
}

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
