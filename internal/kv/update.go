package kv

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// maxUpdateAttempts bounds how often Update retries a transaction that lost
// a conflict. Writers of one key in this process queue on a key lock
// first, so conflicts come only from writers that bypass it (another
// process on a replicated engine, a scan-wide command); a run of this many
// losses means the key is under a write storm and the caller gets an error
// instead of a stall.
const maxUpdateAttempts = 1000

// keyLockStripes is the number of mutexes keys hash onto. Two keys sharing
// a stripe only serialise their read-modify-writes, never deadlock: locks
// are taken in stripe order.
const keyLockStripes = 256

// ErrRetriesExhausted is returned when a read-modify-write lost its
// transaction conflict maxUpdateAttempts times in a row.
var ErrRetriesExhausted = errors.New("the write kept conflicting with concurrent writes of the same keys; retry it")

// keyLocks serialises read-modify-writes of the same key inside one
// process, so 50 clients incrementing one counter queue instead of
// retrying each other's transactions.
type keyLocks struct {
	seed    maphash.Seed
	stripes [keyLockStripes]sync.Mutex
}

func newKeyLocks() *keyLocks { return &keyLocks{seed: maphash.MakeSeed()} }

// lock takes the stripes of keys in order and returns their unlock.
func (l *keyLocks) lock(keys []string) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.String(l.seed, k)%keyLockStripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		l.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			l.stripes[i].Unlock()
		}
	}
}

// Tx is one attempt of a read-modify-write: an engine transaction plus the
// clock reading every expiry rule of the attempt uses. Its methods are the
// operations of this package; a Store runs them through Update, one commit
// per call, and EXEC runs many on one Tx.
type Tx struct {
	s  *Store
	tx storage.Transaction
	// ctx serves the reads of a view (tx == nil); ops collects the writes
	// of a blind write (blind), applied in one Write.
	ctx   context.Context
	blind bool
	ops   []storage.BatchOp
	now   time.Time
	// written records the keys this attempt changed, with whether each is
	// present afterwards, for WATCH and for the scans of a transaction;
	// a blind write leaves it nil (its ops name its keys).
	written map[string]bool
}

// Now is the clock reading of this attempt.
func (t *Tx) Now() time.Time { return t.now }

// Update runs fn in an engine transaction and commits it: one commit for
// everything fn wrote. keys are the keys fn writes, locked for the call so
// writers of the same key in this process take turns. A conflict with a
// concurrent writer runs fn again on fresh reads, so fn must have no
// effects outside tx. An error from fn rolls back and is returned as is.
func (s *Store) Update(ctx context.Context, keys []string, fn func(tx *Tx) error) error {
	unlock := s.locks.lock(keys)
	defer unlock()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		etx, err := s.engine.BeginTransaction(ctx)
		if err != nil {
			return err
		}
		tx := &Tx{s: s, tx: etx, now: s.now()}
		if err := fn(tx); err != nil {
			_ = etx.Rollback()
			return err
		}
		err = etx.Commit()
		if err == nil {
			s.watches.touch(tx.written)
			return nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
		if attempt+1 == maxUpdateAttempts {
			return fmt.Errorf("%w (%d attempts)", ErrRetriesExhausted, maxUpdateAttempts)
		}
		// Back off a little after the first losses, so a writer bypassing
		// the key locks gets to finish.
		if attempt >= 3 {
			time.Sleep(time.Duration(min(attempt, 100)) * 10 * time.Microsecond)
		}
	}
}

// errWrongMode is a programming error: a read in Blind or a write in View.
var errWrongMode = errors.New("kv: a read in a blind write, or a write in a view")

// View runs fn on the newest committed state without a transaction: each
// read sees the latest commit, none joins a read set, fn may not write.
// For single reads, and reads that need no consistency across keys.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	return fn(&Tx{s: s, ctx: ctx, now: s.now()})
}

// Blind runs fn, which writes without reading, and applies its writes in
// one engine Write: one commit, no transaction, no retry. For SET and MSET
// without conditions.
func (s *Store) Blind(ctx context.Context, fn func(tx *Tx) error) error {
	tx := blindTxs.Get().(*Tx)
	tx.s, tx.ctx, tx.blind, tx.now = s, ctx, true, s.now()
	err := fn(tx)
	if err == nil {
		if err = s.engine.Write(ctx, tx.ops); err == nil {
			s.watches.touchOps(tx.ops)
		}
	}
	tx.recycle()
	return err
}

// blindTxs recycles the Tx of Blind with its ops slice, so that a SET
// allocates neither. An engine's Write keeps no reference to the ops slice
// (each copies what it keeps), and nothing else outlives fn.
var blindTxs = sync.Pool{New: func() any { return new(Tx) }}

// maxRecycledOps bounds the ops slice a recycled Tx keeps.
const maxRecycledOps = 256

// recycle returns a blind Tx to blindTxs, dropping its references.
func (t *Tx) recycle() {
	ops := t.ops
	clear(ops)
	if cap(ops) > maxRecycledOps {
		ops = nil
	}
	*t = Tx{ops: ops[:0]}
	blindTxs.Put(t)
}

// read returns key's value and metadata at the attempt's snapshot; ok is
// false when the key is absent or expired.
func (t *Tx) read(key string) (string, storage.KeyMeta, bool, error) {
	var v string
	var m storage.KeyMeta
	var err error
	switch {
	case t.blind:
		return "", m, false, errWrongMode
	case t.tx == nil:
		v, m, err = t.s.engine.GetWithMeta(t.ctx, key)
	default:
		v, m, err = t.tx.GetWithMeta(key)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return "", storage.KeyMeta{}, false, nil
	}
	if err != nil {
		return "", storage.KeyMeta{}, false, err
	}
	if !m.ExpiresAt.IsZero() && !m.ExpiresAt.After(t.now) {
		// Expired between the snapshot's clock and this attempt's.
		return "", storage.KeyMeta{}, false, nil
	}
	return v, m, true, nil
}

// readValue is read without the metadata, for operations that need only
// the value or its presence (so they run on engines without KeyMeta too).
func (t *Tx) readValue(key string) (string, bool, error) {
	var v string
	var err error
	switch {
	case t.blind:
		return "", false, errWrongMode
	case t.tx == nil:
		v, err = t.s.engine.Get(t.ctx, key)
	default:
		v, err = t.tx.Get(key)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

// write buffers key = value expiring at expireAt (zero: never).
func (t *Tx) write(key, value string, expireAt time.Time) error {
	switch {
	case t.blind:
		if !expireAt.IsZero() && !expireAt.After(t.now) {
			// Already expired: the put removes the key.
			t.ops = append(t.ops, storage.BatchOp{Kind: storage.OpDelete, Key: key})
		} else {
			t.ops = append(t.ops, storage.BatchOp{Kind: storage.OpPut, Key: key, Value: value, ExpireAt: expireAt})
		}
	case t.tx == nil:
		return errWrongMode
	default:
		if err := t.tx.PutWithExpiry(key, value, expireAt); err != nil {
			return err
		}
	}
	t.mark(key, expireAt.IsZero() || expireAt.After(t.now))
	return nil
}

// remove buffers a delete of key.
func (t *Tx) remove(key string) error {
	switch {
	case t.blind:
		t.ops = append(t.ops, storage.BatchOp{Kind: storage.OpDelete, Key: key})
	case t.tx == nil:
		return errWrongMode
	default:
		if err := t.tx.Delete(key); err != nil {
			return err
		}
	}
	t.mark(key, false)
	return nil
}

func (t *Tx) mark(key string, present bool) {
	if t.blind {
		// A blind write reads nothing, so only watchers need its keys, and
		// they take them from its ops once it commits (touchOps): a SET
		// allocates no map.
		return
	}
	if t.written == nil {
		t.written = make(map[string]bool)
	}
	t.written[key] = present
}
