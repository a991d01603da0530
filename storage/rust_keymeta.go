//go:build rust

package storage

import (
	"context"
	"time"
)

// The Rust core does not yet keep a key's version nor take an absolute
// expiry through the C ABI. Until it does, the calls that need them answer
// ErrKeyMetaUnsupported (an ErrInvalidArgument), so a server on this engine
// tells its clients which commands are unavailable instead of guessing.

// GetWithMeta implements StorageEngine; see the note above.
func (e *RustEngine) GetWithMeta(_ context.Context, key string) (string, KeyMeta, error) {
	if _, err := e.acquire(); err != nil {
		return "", KeyMeta{}, err
	}
	e.mu.RUnlock()
	if err := CheckKey(key); err != nil {
		return "", KeyMeta{}, err
	}
	return "", KeyMeta{}, ErrKeyMetaUnsupported
}

// GetWithMeta implements Transaction; see the note above.
func (x *rustTxn) GetWithMeta(key string) (string, KeyMeta, error) {
	if err := CheckKey(key); err != nil {
		return "", KeyMeta{}, err
	}
	return "", KeyMeta{}, x.unsupported()
}

// PutWithExpiry implements Transaction; see the note above.
func (x *rustTxn) PutWithExpiry(key, value string, expireAt time.Time) error {
	if expireAt.IsZero() {
		return x.Put(key, value)
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	return x.unsupported()
}

// unsupported answers a finished transaction or a closed engine as every
// other call does, and ErrKeyMetaUnsupported otherwise.
func (x *rustTxn) unsupported() error {
	x.mu.Lock()
	done := x.done
	x.mu.Unlock()
	if done {
		return ErrTxnDone
	}
	if _, err := x.engine.acquire(); err != nil {
		return err
	}
	x.engine.mu.RUnlock()
	return ErrKeyMetaUnsupported
}
