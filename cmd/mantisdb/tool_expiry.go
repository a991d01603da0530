package main

import (
	"context"
	"errors"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// expiryFunc reads the absolute expiry of a live key (the zero time for
// none), or storage.ErrNotFound when it is gone.
type expiryFunc func(ctx context.Context, key string) (time.Time, error)

// expiryReader returns how dump reads a key's expiry from engine, or nil
// when the engine cannot tell (it answers storage.ErrKeyMetaUnsupported):
// then the dump's header says "expiries": false and its keys carry none.
func expiryReader(ctx context.Context, engine storage.StorageEngine) (expiryFunc, error) {
	read := func(ctx context.Context, key string) (time.Time, error) {
		_, meta, err := engine.GetWithMeta(ctx, key)
		return meta.ExpiresAt, err
	}
	// A probe: a missing key answers ErrNotFound on an engine that keeps
	// expiries, and ErrKeyMetaUnsupported on one that cannot tell them.
	switch _, err := read(ctx, "\x00"); {
	case errors.Is(err, storage.ErrKeyMetaUnsupported):
		return nil, nil
	case err == nil, errors.Is(err, storage.ErrNotFound):
		return read, nil
	default:
		return nil, err
	}
}
