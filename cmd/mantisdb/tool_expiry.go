package main

import (
	"context"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// expiryFunc reads the absolute expiry of a live key (the zero time for
// none), or storage.ErrNotFound when it is gone.
type expiryFunc func(ctx context.Context, key string) (time.Time, error)

// expiryReader returns how dump reads a key's expiry from engine.
func expiryReader(engine storage.StorageEngine) expiryFunc {
	return func(ctx context.Context, key string) (time.Time, error) {
		_, meta, err := engine.GetWithMeta(ctx, key)
		return meta.ExpiresAt, err
	}
}
