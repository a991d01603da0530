package storage

import (
	"context"
	"runtime"
	"time"
)

// BeginTransaction starts an optimistic, serializable transaction reading
// at the newest commit, with TTLs judged at the moment it begins.
func (e *MemoryEngine) BeginTransaction(_ context.Context) (Transaction, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != memOpen {
		return nil, ErrClosed
	}
	s := e.cur.Load()
	e.conflicts.register(s.seq)
	tx := &memTxn{e: e, snap: s, now: nowMs()}
	// A transaction dropped without Commit or Rollback would keep conflict
	// tracking on forever; the cleanup is only that leak's backstop.
	tx.cleanup = runtime.AddCleanup(tx, e.endTxn, s.seq)
	return tx, nil
}

// endTxn unregisters a transaction that began at seq.
func (e *MemoryEngine) endTxn(seq uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conflicts.unregister(seq)
}

// memTxn is a transaction of the memory engine.
type memTxn struct {
	e       *MemoryEngine
	snap    *memSnapshot
	now     int64
	reads   map[string]struct{}
	writes  map[string]memOp
	done    bool
	cleanup runtime.Cleanup
}

func (t *memTxn) check() error {
	if t.done {
		return ErrTxnDone
	}
	if t.e.cur.Load() == nil {
		return ErrClosed
	}
	return nil
}

// Put buffers a write of key.
func (t *memTxn) Put(key, value string) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := checkValue(value, t.e.cfg.MaxValueSize); err != nil {
		return err
	}
	t.buffer(memOp{key: key, value: value})
	return nil
}

// Delete buffers a delete of key.
func (t *memTxn) Delete(key string) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	t.buffer(memOp{del: true, key: key})
	return nil
}

func (t *memTxn) buffer(op memOp) {
	if t.writes == nil {
		t.writes = make(map[string]memOp)
	}
	t.writes[op.key] = op
}

// PutWithExpiry buffers a write of key expiring at expireAt (zero: never).
func (t *memTxn) PutWithExpiry(key, value string, expireAt time.Time) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := checkValue(value, t.e.cfg.MaxValueSize); err != nil {
		return err
	}
	t.buffer(memOp{key: key, value: value, expireAt: expiryMs(expireAt)})
	return nil
}

// Get returns the transaction's own write of key, else the snapshot's value,
// or ErrNotFound. A read from the snapshot joins the read set, found or not.
func (t *memTxn) Get(key string) (string, error) {
	v, _, err := t.GetWithMeta(key)
	return v, err
}

// GetWithMeta is Get with the key's expiry and version. The transaction's
// own write has Version 0; its expiry is judged at the transaction's clock.
func (t *memTxn) GetWithMeta(key string) (string, KeyMeta, error) {
	if err := t.check(); err != nil {
		return "", KeyMeta{}, err
	}
	if err := CheckKey(key); err != nil {
		return "", KeyMeta{}, err
	}
	if op, ok := t.writes[key]; ok {
		if op.del || (op.expireAt != 0 && op.expireAt <= t.now) {
			return "", KeyMeta{}, ErrNotFound
		}
		km := KeyMeta{}
		if op.expireAt != 0 {
			km.ExpiresAt = time.UnixMilli(op.expireAt)
		}
		return op.value, km, nil
	}
	if t.reads == nil {
		t.reads = make(map[string]struct{})
	}
	t.reads[key] = struct{}{}
	t.e.reads.Add(1)
	ent, ok := t.snap.entry(key, t.now)
	if !ok {
		return "", KeyMeta{}, ErrNotFound
	}
	return ent.value, ent.meta(), nil
}

// Commit applies the buffered writes atomically, or returns ErrConflict
// (writing nothing). Either way the transaction is done.
func (t *memTxn) Commit() error {
	if t.done {
		return ErrTxnDone
	}
	t.done = true
	t.cleanup.Stop()
	e := t.e
	e.mu.Lock()
	defer e.mu.Unlock()
	// Unregister only after validation: it prunes the commits this
	// transaction is validated against.
	defer e.conflicts.unregister(t.snap.seq)
	if e.state != memOpen {
		return ErrClosed
	}
	if len(t.writes) == 0 {
		return nil
	}
	for k := range t.reads {
		if err := e.conflicts.check(k, t.snap.seq); err != nil {
			return err
		}
	}
	ops := make([]memOp, 0, len(t.writes))
	for k, op := range t.writes {
		if err := e.conflicts.check(k, t.snap.seq); err != nil {
			return err
		}
		ops = append(ops, op)
	}
	e.applyLocked(ops, nowMs())
	return nil
}

// Rollback discards the buffered writes. It always succeeds: after Commit,
// twice, or after the engine closed.
func (t *memTxn) Rollback() error {
	if t.done {
		return nil
	}
	t.done = true
	t.writes, t.reads = nil, nil
	t.cleanup.Stop()
	t.e.endTxn(t.snap.seq)
	return nil
}
