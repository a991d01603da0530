package cluster

import (
	"context"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Key metadata comes from the cluster's records, whatever the local engine:
// Version is the raft index of the entry that last wrote the key (equal on
// every replica, and new on every write, same value included), ExpiresAt
// the absolute expiry the leader computed.

func (r record) meta() storage.KeyMeta {
	m := storage.KeyMeta{Version: r.version}
	if r.expiryMs != 0 {
		m.ExpiresAt = time.UnixMilli(r.expiryMs)
	}
	return m
}

// GetWithMeta implements storage.StorageEngine at ctx's consistency.
func (e *Engine) GetWithMeta(ctx context.Context, key string) (string, storage.KeyMeta, error) {
	r, err := e.getRecord(ctx, key)
	if err != nil {
		return "", storage.KeyMeta{}, err
	}
	return r.value, r.meta(), nil
}

// GetWithMeta implements storage.Transaction. The transaction's own write
// has Version 0.
func (t *txn) GetWithMeta(key string) (string, storage.KeyMeta, error) {
	if err := t.check(); err != nil {
		return "", storage.KeyMeta{}, err
	}
	if err := checkKey(key); err != nil {
		return "", storage.KeyMeta{}, err
	}
	if i, ok := t.writes[key]; ok {
		o := t.ops[i]
		if o.del || (o.abs && o.expiry <= t.nowMs) {
			return "", storage.KeyMeta{}, storage.ErrNotFound
		}
		m := storage.KeyMeta{}
		if o.abs {
			m.ExpiresAt = time.UnixMilli(o.expiry)
		}
		return o.value, m, nil
	}
	r, ok, err := t.snapshotRecord(key)
	if err != nil {
		return "", storage.KeyMeta{}, err
	}
	if _, seen := t.read[key]; !seen {
		t.read[key] = r.version
	}
	if !ok {
		return "", storage.KeyMeta{}, storage.ErrNotFound
	}
	return r.value, r.meta(), nil
}

// PutWithExpiry implements storage.Transaction: the expiry is absolute and
// travels to the leader as it is; one at or before the commit's clock makes
// the write remove the key.
func (t *txn) PutWithExpiry(key, value string, expireAt time.Time) error {
	if expireAt.IsZero() {
		return t.Put(key, value)
	}
	if err := t.check(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := t.e.checkValue(value); err != nil {
		return err
	}
	t.buffer(op{key: key, value: value, expiry: max(expireAt.UnixMilli(), 1), abs: true})
	return nil
}
