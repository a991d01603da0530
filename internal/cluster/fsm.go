package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// fsm is the replicated state machine: raft owns the log, the fsm owns how
// committed entries change the local engine. It implements
// raft.BatchingFSM, so one raft batch becomes one engine commit holding
// every entry of the batch and the applied index. The commit is not synced:
// raft's log is (DESIGN.md, "Durability").
type fsm struct {
	// mu guards local: Restore swaps it while reads hold it.
	mu    sync.RWMutex
	local storage.StorageEngine
	store *localStore

	applied  atomic.Uint64 // index of the last entry in the local engine
	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced when applied moves

	failed atomic.Pointer[error]
	onFail func(error)

	puts, deletes, conflicts, batches, entries, restores atomic.Uint64
	// checkpoints counts snapshots taken as engine checkpoints,
	// archiveRestores the installs of checkpoint archives (of restores).
	checkpoints, archiveRestores atomic.Uint64
	// duplicates counts entries a session showed applied already (sessions.go).
	duplicates atomic.Uint64
	// snapshotSyncs counts engine syncs at snapshots (Apply does not sync).
	snapshotSyncs atomic.Uint64

	// sessions holds the session records (sessions.go) as Apply last wrote
	// them to the engine, so that the next entry of a session finds its
	// record without an engine read. Only raft's fsm goroutine touches it
	// (ApplyBatch, and install, which clears it when the engine is
	// replaced); it is dropped whole when it holds maxCachedSessions, and
	// a session missing from it is read from the engine as before.
	sessions map[string]record

	log *slog.Logger

	// beforeApply, when a test sets it, runs at the start of every batch:
	// it holds one node's FSM back while the others apply.
	beforeApply atomic.Pointer[func([]*raft.Log)]
}

// newFSM returns an fsm over an initialised local engine, whose stored
// applied index it reads.
func newFSM(store *localStore, local storage.StorageEngine, log *slog.Logger, onFail func(error)) (*fsm, error) {
	f := &fsm{local: local, store: store, notify: make(chan struct{}), onFail: onFail, log: log}
	idx, err := readApplied(local)
	if err != nil {
		return nil, err
	}
	f.applied.Store(idx)
	return f, nil
}

// readApplied returns the applied index stored in an engine (0 if none).
func readApplied(e storage.StorageEngine) (uint64, error) {
	raw, err := e.Get(context.Background(), appliedKey)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: read the applied index: %w", err)
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("%w: the applied index record has %d bytes, want 8", storage.ErrCorruption, len(raw))
	}
	return binary.BigEndian.Uint64([]byte(raw)), nil
}

func appliedValue(idx uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], idx)
	return string(b[:])
}

// Apply implements raft.FSM for a single entry.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: every entry of the batch above the
// stored applied index, and the new applied index, go into the local engine
// in one Write. Each entry's answer is nil, or storage.ErrConflict when one
// of its conditions failed (it then changed nothing). An engine failure
// stops the node: nothing of the batch is acknowledged and the applied
// index stays, so a restart applies the batch again.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	if hook := f.beforeApply.Load(); hook != nil {
		(*hook)(logs)
	}
	answers := make([]any, len(logs))
	if err := f.failure(); err != nil {
		for i := range answers {
			answers[i] = err
		}
		return answers
	}
	base := f.applied.Load()
	last := base
	nowMs := time.Now().UnixMilli()
	// Sized for the common entry: one op and its session record.
	b := batchState{f: f, overlay: make(map[string]overlayRecord, 2*len(logs)),
		ops: make([]storage.BatchOp, 0, 2*len(logs)+1), nowMs: nowMs}
	var n uint64
	for i, l := range logs {
		if l.Index <= base {
			continue // already in the engine: applied before a restart
		}
		last = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		n++
		c, err := decodeCommand(l.Data)
		if err == nil && c.kind != kindEntry {
			err = fmt.Errorf("cluster command at index %d is a proposal, not an entry", l.Index)
		}
		if err == nil {
			answers[i], err = b.applySession(c, l.Index)
		}
		if err != nil {
			return f.stop(answers, fmt.Errorf("apply entry %d: %w", l.Index, err))
		}
	}
	if last == base {
		return answers
	}
	b.ops = append(b.ops, storage.BatchOp{Kind: storage.OpPut, Key: appliedKey, Value: appliedValue(last)})
	f.mu.RLock()
	err := f.local.Write(context.Background(), b.ops)
	f.mu.RUnlock()
	if err != nil {
		return f.stop(answers, fmt.Errorf("write entries %d..%d to the engine: %w", base+1, last, err))
	}
	f.cacheSessions(&b)
	f.puts.Add(b.puts)
	f.deletes.Add(b.deletes)
	f.conflicts.Add(b.conflicts)
	f.duplicates.Add(b.duplicates)
	f.batches.Add(1)
	f.entries.Add(n)
	f.setApplied(last)
	return answers
}

// batchState is one ApplyBatch in progress: the engine ops gathered so far,
// and an overlay of the keys they change, which later entries of the same
// batch must read in place of the engine.
type batchState struct {
	f       *fsm
	overlay map[string]overlayRecord
	ops     []storage.BatchOp
	nowMs   int64
	// sessions are the keys of the session records this batch writes.
	sessions []string

	puts, deletes, conflicts, duplicates uint64
}

// apply adds entry c at index to the batch. Its answer is nil or
// storage.ErrConflict; err is an engine failure.
func (b *batchState) apply(c command, index uint64) (answer any, err error) {
	for _, k := range c.conds {
		v, err := b.versionAt(k.key, c.clockMs)
		if err != nil {
			return nil, err
		}
		if v == 0 && k.version == 0 {
			// Absent when read and now; not written in between either?
			if v, err = b.writtenSince(c, k.key); err != nil {
				return nil, err
			}
		}
		if v != k.version {
			b.conflicts++
			return fmt.Errorf("%w: key %q changed after the transaction read it", storage.ErrConflict, shortKey(k.key)), nil
		}
	}
	for _, o := range c.ops {
		if o.del || (o.expiry != 0 && o.expiry <= c.clockMs) {
			// A put already expired at the leader's clock removes the key.
			b.ops = append(b.ops, storage.BatchOp{Kind: storage.OpDelete, Key: o.key})
			b.overlay[o.key] = overlayRecord{deleted: true}
			b.tombstone(o.key, index, c.clockMs)
			b.deletes++
			continue
		}
		ttl, keep := engineTTL(o.expiry, b.nowMs)
		if !keep {
			b.ops = append(b.ops, storage.BatchOp{Kind: storage.OpDelete, Key: o.key})
			b.overlay[o.key] = overlayRecord{deleted: true}
			b.tombstone(o.key, index, c.clockMs)
			b.puts++
			continue
		}
		b.ops = append(b.ops, storage.BatchOp{Kind: storage.OpPut, Key: o.key, Value: encodeRecord(index, o.expiry, o.value), TTL: ttl})
		b.overlay[o.key] = overlayRecord{r: record{version: index, expiryMs: o.expiry, value: o.value}}
		b.puts++
	}
	return nil, nil
}

// overlayRecord is a key as the batch so far left it: written (r) or
// deleted.
type overlayRecord struct {
	r       record
	deleted bool
}

// maxCachedSessions bounds fsm.sessions: a node's sessions are as many as
// the writes it ran at once, and every restart of a node starts new ones.
const maxCachedSessions = 1 << 14

// cacheSessions records the session records of a batch the engine has
// just committed.
func (f *fsm) cacheSessions(b *batchState) {
	if len(b.sessions) == 0 {
		return
	}
	if f.sessions == nil || len(f.sessions)+len(b.sessions) > maxCachedSessions {
		f.sessions = make(map[string]record, len(b.sessions))
	}
	for _, key := range b.sessions {
		f.sessions[key] = b.overlay[key].r
	}
}

// versionAt is key's version at the leader's clock clockMs: 0 when absent
// or expired. The same on every replica, since it reads only replicated
// state and the entry's clock.
func (b *batchState) versionAt(key string, clockMs int64) (uint64, error) {
	if o, ok := b.overlay[key]; ok {
		if o.deleted || !o.r.liveAt(clockMs) {
			return 0, nil
		}
		return o.r.version, nil
	}
	b.f.mu.RLock()
	raw, err := b.f.local.Get(context.Background(), key)
	b.f.mu.RUnlock()
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	r, err := decodeRecord(key, raw)
	if err != nil {
		return 0, err
	}
	if !r.liveAt(clockMs) {
		return 0, nil
	}
	return r.version, nil
}

// stop records an engine failure: this batch and every later one answer
// the error and change nothing, and the node shuts down.
func (f *fsm) stop(answers []any, err error) []any {
	err = fmt.Errorf("%w: %w", ErrStopped, err)
	if f.failed.CompareAndSwap(nil, &err) {
		f.log.Error("cluster: the engine failed to apply committed entries; stopping this node", "error", err)
		if f.onFail != nil {
			go f.onFail(err)
		}
	}
	for i := range answers {
		answers[i] = err
	}
	f.broadcast()
	return answers
}

// failure is the error that stopped the node, or nil.
func (f *fsm) failure() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *fsm) setApplied(idx uint64) {
	f.applied.Store(idx)
	f.broadcast()
}

func (f *fsm) broadcast() {
	f.notifyMu.Lock()
	close(f.notify)
	f.notify = make(chan struct{})
	f.notifyMu.Unlock()
}

// waitApplied returns once the local engine holds every entry up to idx.
func (f *fsm) waitApplied(ctx context.Context, idx uint64) error {
	for {
		f.notifyMu.Lock()
		ch := f.notify
		f.notifyMu.Unlock()
		if err := f.failure(); err != nil {
			return err
		}
		if f.applied.Load() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for this node to apply index %d (at %d): %w", ErrNoLeader, idx, f.applied.Load(), ctx.Err())
		}
	}
}

// engine returns the local engine and a release function; the engine is
// not swapped by a snapshot install until release is called.
func (f *fsm) engine() (storage.StorageEngine, func()) {
	f.mu.RLock()
	return f.local, f.mu.RUnlock
}
