package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// BeginTransaction implements storage.StorageEngine. The transaction reads
// a snapshot of this node's engine taken after a read barrier at ctx's
// consistency, and buffers its writes. Commit proposes the writes with
// one condition per key read or written: the version (raft index of the
// last write) the snapshot showed, 0 for absent. Apply checks them against
// the replicated state at the entry's leader clock, the same answer on
// every replica, and applies all writes or none (ErrConflict).
//
// Versions move on every write, the same value included, so a transaction
// conflicts with any write of its keys committed after its snapshot, as on
// one node. A key read absent has no version: the proposal then carries
// the snapshot's applied index, and Apply also refuses it when the key was
// created and deleted again since (deletes leave a tombstone, sessions.go).
func (e *Engine) BeginTransaction(ctx context.Context) (storage.Transaction, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if err := e.readBarrier(ctx); err != nil {
		return nil, err
	}
	local, release := e.fsm.engine()
	snap, err := local.BeginTransaction(ctx)
	release()
	if err != nil {
		return nil, err
	}
	return &txn{e: e, ctx: context.WithoutCancel(ctx), snap: snap, nowMs: time.Now().UnixMilli(),
		read: make(map[string]uint64), writes: make(map[string]int)}, nil
}

// txn is a transaction on a cluster node.
type txn struct {
	e     *Engine
	ctx   context.Context
	snap  storage.Transaction // read-only view of the local engine
	nowMs int64
	// read holds the version each key read had in the snapshot.
	read map[string]uint64
	// ops are the buffered writes in order; writes indexes the last op of each key.
	ops    []op
	writes map[string]int
	done   bool
}

func (t *txn) check() error {
	if t.done {
		return storage.ErrTxnDone
	}
	return t.e.checkOpen()
}

// snapshotVersion reads key's record from the snapshot.
func (t *txn) snapshotRecord(key string) (record, bool, error) {
	raw, err := t.snap.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		if errors.Is(err, storage.ErrClosed) && t.e.checkOpen() == nil {
			// A snapshot install replaced the engine under the transaction.
			return record{}, false, fmt.Errorf("%w: this node installed a snapshot during the transaction", storage.ErrConflict)
		}
		return record{}, false, err
	}
	r, err := decodeRecord(key, raw)
	if err != nil {
		return record{}, false, err
	}
	if !r.liveAt(t.nowMs) {
		return record{}, false, nil
	}
	return r, true, nil
}

// Get implements storage.Transaction.
func (t *txn) Get(key string) (string, error) {
	if err := t.check(); err != nil {
		return "", err
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	if i, ok := t.writes[key]; ok {
		if o := t.ops[i]; o.del || (o.abs && o.expiry <= t.nowMs) {
			return "", storage.ErrNotFound
		}
		return t.ops[i].value, nil
	}
	r, ok, err := t.snapshotRecord(key)
	if err != nil {
		return "", err
	}
	if _, seen := t.read[key]; !seen {
		t.read[key] = r.version
	}
	if !ok {
		return "", storage.ErrNotFound
	}
	return r.value, nil
}

// Put implements storage.Transaction.
func (t *txn) Put(key, value string) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := t.e.checkValue(value); err != nil {
		return err
	}
	t.buffer(op{key: key, value: value})
	return nil
}

// Delete implements storage.Transaction.
func (t *txn) Delete(key string) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	t.buffer(op{del: true, key: key})
	return nil
}

func (t *txn) buffer(o op) {
	if i, ok := t.writes[o.key]; ok {
		t.ops[i] = o
		return
	}
	t.writes[o.key] = len(t.ops)
	t.ops = append(t.ops, o)
}

// Commit implements storage.Transaction.
func (t *txn) Commit() error {
	if err := t.check(); err != nil {
		return err
	}
	defer t.finish()
	if len(t.ops) == 0 {
		return nil
	}
	conds := make([]cond, 0, len(t.read)+len(t.ops))
	for k, v := range t.read {
		conds = append(conds, cond{key: k, version: v})
	}
	for _, o := range t.ops {
		if _, ok := t.read[o.key]; ok {
			continue
		}
		r, _, err := t.snapshotRecord(o.key)
		if err != nil {
			return err
		}
		conds = append(conds, cond{key: o.key, version: r.version})
	}
	c := command{kind: kindProposal, conds: conds, ops: t.ops}
	if err := t.readPoint(&c); err != nil {
		return err
	}
	return t.e.propose(t.ctx, c)
}

// Rollback implements storage.Transaction.
func (t *txn) Rollback() error {
	if !t.done {
		t.finish()
	}
	return nil
}

func (t *txn) finish() {
	t.done = true
	_ = t.snap.Rollback()
}
