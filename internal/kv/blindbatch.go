package kv

import (
	"context"
	"time"
)

// BlindBatch gathers the writes of several blind writes (SET and MSET
// without conditions, as Store.Blind runs them) into one engine Write: one
// commit and, under --sync always, one sync for all of them. A protocol
// uses it for a pipeline's run of consecutive blind writes; since none of
// them reads, running them as one Write gives the state running them one
// by one in order would (a key written twice keeps the later write), and
// other clients see all of them or none.
//
// A BlindBatch is used by one goroutine at a time.
type BlindBatch struct {
	s   *Store
	ctx context.Context
	tx  *Tx
	// spare is the Tx of the last commit, reused by the next Add with its
	// ops slice emptied.
	spare *Tx
	// bytes is the size of the keys and values buffered so far.
	bytes int
}

// NewBlindBatch returns an empty batch. Its clock (for expiries already in
// the past) is read when the first write is added.
func (s *Store) NewBlindBatch(ctx context.Context) *BlindBatch {
	return &BlindBatch{s: s, ctx: ctx}
}

// Add runs fn as Blind would, buffering its writes after those of the
// earlier calls, to be applied by Commit. An error from fn discards the
// writes fn made and is returned; the earlier ones stay.
func (b *BlindBatch) Add(fn func(tx *Tx) error) error {
	if b.tx == nil {
		tx := b.spare
		b.spare = nil
		if tx == nil {
			tx = new(Tx)
		}
		tx.s, tx.ctx, tx.blind, tx.now = b.s, b.ctx, true, b.s.now()
		b.tx = tx
	}
	mark := len(b.tx.ops)
	if err := fn(b.tx); err != nil {
		b.tx.ops = b.tx.ops[:mark]
		b.remark()
		return err
	}
	for _, op := range b.tx.ops[mark:] {
		b.bytes += len(op.Key) + len(op.Value)
	}
	return nil
}

// remark recounts the size of the buffered ops, after a failed Add dropped
// some.
func (b *BlindBatch) remark() {
	b.bytes = 0
	for _, op := range b.tx.ops {
		b.bytes += len(op.Key) + len(op.Value)
	}
}

// Ops is the number of engine operations buffered.
func (b *BlindBatch) Ops() int {
	if b.tx == nil {
		return 0
	}
	return len(b.tx.ops)
}

// Bytes is the size of the keys and values buffered.
func (b *BlindBatch) Bytes() int { return b.bytes }

// Now is the clock reading the batch's writes use (the current time before
// the first Add).
func (b *BlindBatch) Now() time.Time {
	if b.tx == nil {
		return b.s.now()
	}
	return b.tx.now
}

// Commit applies every buffered write in one engine Write and empties the
// batch, which can then be reused. On an error none of them may be
// acknowledged: the Write is atomic, so the engine applied all of them or
// none (or, after a failed sync, their durability is unknown); running
// them again one by one in the same order is safe, as they are blind.
func (b *BlindBatch) Commit() error { return b.CommitIn(b.ctx) }

// CommitIn is Commit with the engine Write under ctx rather than the
// batch's context: a caller that runs one batch under a
// storage.CommitDeferral and the next without one (deferral.go).
func (b *BlindBatch) CommitIn(ctx context.Context) error {
	tx := b.tx
	b.tx, b.bytes = nil, 0
	if tx == nil || len(tx.ops) == 0 {
		return nil
	}
	err := b.s.engine.Write(ctx, tx.ops)
	if err == nil {
		b.s.watches.touchOps(tx.ops)
	}
	b.keep(tx)
	return err
}

// keep empties tx for the next Add (an engine's Write keeps no reference
// to the ops slice).
func (b *BlindBatch) keep(tx *Tx) {
	ops := tx.ops
	clear(ops)
	if cap(ops) > maxRecycledOps*16 {
		ops = nil
	}
	*tx = Tx{ops: ops[:0]}
	b.spare = tx
}

// Discard drops the buffered writes without applying them.
func (b *BlindBatch) Discard() {
	if b.tx != nil {
		b.keep(b.tx)
	}
	b.tx, b.bytes = nil, 0
}
