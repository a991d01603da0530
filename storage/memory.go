package storage

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// memDegree is the B-tree degree of the memory engine. Entries are pointers,
// so the nodes a write copies (one per level) stay small.
const memDegree = 32

// memIterChunk is how many entries an iterator takes from the tree per step.
const memIterChunk = 64

// memReapPerCommit bounds the expired entries one commit removes, so a mass
// expiry is spread over many writes instead of stalling one.
const memReapPerCommit = 64

// MemoryEngine is the pure-Go engine: the reference model the Rust engine is
// tested against, and the default engine of builds without Rust.
//
// It is NOT durable: Init accepts any data directory and never touches it,
// and everything is lost on Close (Sync is a no-op).
//
// Every commit publishes a new immutable copy-on-write B-tree (a clone of the
// writers' tree costs O(1); the writes after it copy one path), so reads,
// iterators and transactions take a snapshot with one atomic load and never
// block writers, and a batch becomes visible all at once.
type MemoryEngine struct {
	cfg Config

	// cur is the newest committed state: nil before Init and after Close.
	// A published snapshot is never modified.
	cur atomic.Pointer[memSnapshot]

	// mu serialises commits, Init, Close, Stats and transaction bookkeeping;
	// the fields below it are guarded by it.
	mu    sync.Mutex
	state memState
	// tree is the writers' private copy; published snapshots are clones of it.
	tree *btree.BTreeG[*memEntry]
	// expiry holds the entries of tree that carry a TTL, by (expiry, key).
	expiry    *btree.BTreeG[*memEntry]
	seq       uint64
	conflicts conflictTracker

	// Counters for Stats, bumped without the lock.
	reads, writes, deletes atomic.Uint64
}

type memState int

const (
	memNew memState = iota
	memOpen
	memClosed
)

// memEntry is one live key. Entries are immutable once in a tree.
type memEntry struct {
	key, value string
	// expiresAt is the expiry in Unix milliseconds, 0 for none; the key is
	// gone once the clock reaches it (the Rust engine's rule).
	expiresAt int64
	// seq is the commit that wrote this version: KeyMeta.Version.
	seq uint64
}

// meta is the entry's KeyMeta.
func (m *memEntry) meta() KeyMeta {
	km := KeyMeta{Version: m.seq}
	if m.expiresAt != 0 {
		km.ExpiresAt = time.UnixMilli(m.expiresAt)
	}
	return km
}

func (m *memEntry) expired(nowMs int64) bool {
	return m.expiresAt != 0 && m.expiresAt <= nowMs
}

func lessKey(a, b *memEntry) bool { return a.key < b.key }

func lessExpiry(a, b *memEntry) bool {
	if a.expiresAt != b.expiresAt {
		return a.expiresAt < b.expiresAt
	}
	return a.key < b.key
}

// memSnapshot is the state after commit seq.
type memSnapshot struct {
	tree *btree.BTreeG[*memEntry]
	seq  uint64
}

func (s *memSnapshot) get(key string, nowMs int64) (string, bool) {
	ent, ok := s.entry(key, nowMs)
	if !ok {
		return "", false
	}
	return ent.value, true
}

// entry is the live entry of key at nowMs.
func (s *memSnapshot) entry(key string, nowMs int64) (*memEntry, bool) {
	ent, ok := s.tree.Get(&memEntry{key: key})
	if !ok || ent.expired(nowMs) {
		return nil, false
	}
	return ent, true
}

// memOp is one validated write of a commit. A put's ttl, if positive, is
// resolved to an expiry against the commit's clock; expireAt, if not 0, is
// the absolute expiry in Unix milliseconds (excluding ttl).
type memOp struct {
	del      bool
	key      string
	value    string
	ttl      time.Duration
	expireAt int64
}

// expiryMs is t in Unix milliseconds for memOp.expireAt: 0 for the zero
// time, and at least 1 for any other, so a time before 1970 is in the past
// rather than "no expiry".
func expiryMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 1)
}

func nowMs() int64 { return time.Now().UnixMilli() }

// expiryAt is the absolute expiry of a write made at now with ttl, at the
// millisecond resolution the Rust engine stores.
func expiryAt(now int64, ttl time.Duration) int64 {
	return max(now+ttl.Milliseconds(), 1)
}

// NewMemoryEngine returns a memory engine, not yet initialised. It uses
// cfg.MaxValueSize; the other fields concern durable engines only.
func NewMemoryEngine(cfg Config) *MemoryEngine {
	return &MemoryEngine{cfg: cfg.withDefaults()}
}

// Name returns "memory".
func (e *MemoryEngine) Name() string { return "memory" }

// Init opens the engine. dataDir is ignored: the memory engine keeps nothing
// on disk. Init twice is an error, and so is Init after Close.
func (e *MemoryEngine) Init(dataDir string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case memOpen:
		return fmt.Errorf("%w: memory engine is already initialised", ErrInvalidArgument)
	case memClosed:
		return ErrClosed
	}
	e.state = memOpen
	e.tree = btree.NewG(memDegree, lessKey)
	e.expiry = btree.NewG(memDegree, lessExpiry)
	e.publishLocked()
	return nil
}

// Close drops every key; later calls return ErrClosed. Closing twice is fine.
func (e *MemoryEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state = memClosed
	e.cur.Store(nil)
	e.tree, e.expiry = nil, nil
	e.conflicts = conflictTracker{}
	return nil
}

// snapshot returns the newest committed state, or ErrClosed.
func (e *MemoryEngine) snapshot() (*memSnapshot, error) {
	s := e.cur.Load()
	if s == nil {
		return nil, ErrClosed
	}
	return s, nil
}

// Put sets key to value.
func (e *MemoryEngine) Put(_ context.Context, key, value string) error {
	if err := e.checkPut(key, value); err != nil {
		return err
	}
	return e.commit([]memOp{{key: key, value: value}})
}

// PutWithTTL sets key to value, invisible once ttl has passed.
func (e *MemoryEngine) PutWithTTL(_ context.Context, key, value string, ttl time.Duration) error {
	if err := e.checkPut(key, value); err != nil {
		return err
	}
	if err := checkTTL(ttl); err != nil {
		return err
	}
	return e.commit([]memOp{{key: key, value: value, ttl: ttl}})
}

func (e *MemoryEngine) checkPut(key, value string) error {
	if _, err := e.snapshot(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	return checkValue(value, e.cfg.MaxValueSize)
}

// Get returns the value of key, or ErrNotFound.
func (e *MemoryEngine) Get(_ context.Context, key string) (string, error) {
	s, err := e.snapshot()
	if err != nil {
		return "", err
	}
	if err := CheckKey(key); err != nil {
		return "", err
	}
	e.reads.Add(1)
	ent, ok := s.tree.Get(&memEntry{key: key})
	// The clock is read only for keys that carry an expiry.
	if !ok || (ent.expiresAt != 0 && ent.expired(nowMs())) {
		return "", ErrNotFound
	}
	return ent.value, nil
}

// GetWithMeta returns the value of key with its expiry and version, or
// ErrNotFound when the key is absent or expired.
func (e *MemoryEngine) GetWithMeta(_ context.Context, key string) (string, KeyMeta, error) {
	s, err := e.snapshot()
	if err != nil {
		return "", KeyMeta{}, err
	}
	if err := CheckKey(key); err != nil {
		return "", KeyMeta{}, err
	}
	e.reads.Add(1)
	ent, ok := s.entry(key, nowMs())
	if !ok {
		return "", KeyMeta{}, ErrNotFound
	}
	return ent.value, ent.meta(), nil
}

// Delete removes key; deleting a missing key succeeds (and, as in the Rust
// engine, counts as a commit of key for conflict checks).
func (e *MemoryEngine) Delete(_ context.Context, key string) error {
	if _, err := e.snapshot(); err != nil {
		return err
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	return e.commit([]memOp{{del: true, key: key}})
}

// BatchPut sets every pair atomically. Nothing is written if any pair is invalid.
func (e *MemoryEngine) BatchPut(_ context.Context, kvs map[string]string) error {
	if _, err := e.snapshot(); err != nil {
		return err
	}
	ops := make([]memOp, 0, len(kvs))
	for k, v := range kvs {
		if err := CheckKey(k); err != nil {
			return err
		}
		if err := checkValue(v, e.cfg.MaxValueSize); err != nil {
			return err
		}
		ops = append(ops, memOp{key: k, value: v})
	}
	return e.commit(ops)
}

// BatchGet returns the present keys among keys, read at one point in time.
func (e *MemoryEngine) BatchGet(_ context.Context, keys []string) (map[string]string, error) {
	s, err := e.snapshot()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return nil, err
		}
	}
	e.reads.Add(uint64(len(keys)))
	now := nowMs()
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if v, ok := s.get(k, now); ok {
			out[k] = v
		}
	}
	return out, nil
}

// BatchDelete removes every key atomically.
func (e *MemoryEngine) BatchDelete(_ context.Context, keys []string) error {
	if _, err := e.snapshot(); err != nil {
		return err
	}
	ops := make([]memOp, 0, len(keys))
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return err
		}
		ops = append(ops, memOp{del: true, key: k})
	}
	return e.commit(ops)
}

// Write applies ops atomically; a key written twice keeps the later op. A
// put's TTL, when not zero, must be at least 1 ms (a negative TTL is an
// error, not "no TTL"). Nothing is written if any op is invalid.
func (e *MemoryEngine) Write(_ context.Context, ops []BatchOp) error {
	if _, err := e.snapshot(); err != nil {
		return err
	}
	mops := make([]memOp, 0, len(ops))
	for i, op := range ops {
		if err := CheckKey(op.Key); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
		switch op.Kind {
		case OpPut:
			if err := checkValue(op.Value, e.cfg.MaxValueSize); err != nil {
				return fmt.Errorf("op %d: %w", i, err)
			}
			if op.TTL != 0 {
				if err := checkTTL(op.TTL); err != nil {
					return fmt.Errorf("op %d: %w", i, err)
				}
			}
			if err := checkExpiry(op); err != nil {
				return fmt.Errorf("op %d: %w", i, err)
			}
			mops = append(mops, memOp{key: op.Key, value: op.Value, ttl: op.TTL, expireAt: expiryMs(op.ExpireAt)})
		case OpDelete:
			mops = append(mops, memOp{del: true, key: op.Key})
		default:
			return fmt.Errorf("%w: op %d has unknown kind %d", ErrInvalidArgument, i, op.Kind)
		}
	}
	return e.commit(mops)
}

// IncrBy implements Updater.
func (e *MemoryEngine) IncrBy(_ context.Context, key string, delta int64) (int64, error) {
	var n int64
	err := e.update(key, func(cur string, ok bool) (string, error) {
		var c int64
		if ok {
			v, valid := ParseInt(cur)
			if !valid {
				return "", ErrNotInteger
			}
			c = v
		}
		sum, fits := AddInt64(c, delta)
		if !fits {
			return "", ErrIncrOverflow
		}
		n = sum
		return strconv.FormatInt(sum, 10), nil
	})
	return n, err
}

// Append implements Updater.
func (e *MemoryEngine) Append(_ context.Context, key, suffix string, maxLen int) (int, error) {
	var n int
	err := e.update(key, func(cur string, _ bool) (string, error) {
		if len(cur)+len(suffix) > maxLen {
			return "", ErrTooLong
		}
		n = len(cur) + len(suffix)
		return cur + suffix, nil
	})
	return n, err
}

// update commits fn's new value of key, computed from its current value
// (ok false: missing or expired) under the commit lock, keeping its expiry.
func (e *MemoryEngine) update(key string, fn func(cur string, ok bool) (string, error)) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != memOpen {
		return ErrClosed
	}
	now := nowMs()
	var cur string
	var exp int64
	ent, ok := e.tree.Get(&memEntry{key: key})
	if ok && ent.expiresAt != 0 && ent.expired(now) {
		ok = false
	}
	if ok {
		cur, exp = ent.value, ent.expiresAt
	}
	v, err := fn(cur, ok)
	if err != nil {
		return err
	}
	if err := checkValue(v, e.cfg.MaxValueSize); err != nil {
		return err
	}
	e.applyLocked([]memOp{{key: key, value: v, expireAt: exp}}, now)
	return nil
}

// commit applies validated ops as one commit.
func (e *MemoryEngine) commit(ops []memOp) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != memOpen {
		return ErrClosed
	}
	if len(ops) > 0 {
		e.applyLocked(ops, nowMs())
	}
	return nil
}

// applyLocked commits validated ops under the next sequence number and
// publishes the result.
func (e *MemoryEngine) applyLocked(ops []memOp, now int64) {
	e.seq++
	e.reapLocked(now)
	var puts, dels uint64
	for _, op := range ops {
		// A put whose absolute expiry has passed removes the key.
		if op.del || (op.expireAt != 0 && op.expireAt <= now) {
			if old, ok := e.tree.Delete(&memEntry{key: op.key}); ok {
				e.forgetExpiryLocked(old)
			}
			dels++
		} else {
			ent := &memEntry{key: op.key, value: op.value, seq: e.seq, expiresAt: op.expireAt}
			if op.ttl > 0 {
				ent.expiresAt = expiryAt(now, op.ttl)
			}
			if old, ok := e.tree.ReplaceOrInsert(ent); ok {
				e.forgetExpiryLocked(old)
			}
			if ent.expiresAt != 0 {
				e.expiry.ReplaceOrInsert(ent)
			}
			puts++
		}
		e.conflicts.record(op.key, e.seq)
	}
	e.writes.Add(puts)
	e.deletes.Add(dels)
	e.publishLocked()
}

func (e *MemoryEngine) forgetExpiryLocked(old *memEntry) {
	if old.expiresAt != 0 {
		e.expiry.Delete(old)
	}
}

// reapLocked removes a few expired entries to bound memory. Removing them is
// not a commit: they are already invisible to every reader.
func (e *MemoryEngine) reapLocked(now int64) {
	for range memReapPerCommit {
		ent, ok := e.expiry.Min()
		if !ok || !ent.expired(now) {
			return
		}
		e.expiry.DeleteMin()
		e.tree.Delete(ent)
	}
}

// publishLocked makes the writers' tree the newest snapshot. The clone
// shares every node; the next write copies the nodes it changes.
func (e *MemoryEngine) publishLocked() {
	e.cur.Store(&memSnapshot{tree: e.tree.Clone(), seq: e.seq})
}

// HealthCheck returns nil while the engine is open, else ErrClosed.
func (e *MemoryEngine) HealthCheck(_ context.Context) error {
	_, err := e.snapshot()
	return err
}

// Sync does nothing (the memory engine is not durable) and returns nil
// while the engine is open, else ErrClosed.
func (e *MemoryEngine) Sync(_ context.Context) error {
	_, err := e.snapshot()
	return err
}

// Stats returns the engine's counters. Keys counts the keys visible now;
// the disk and cache figures are zero.
func (e *MemoryEngine) Stats(_ context.Context) (Stats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != memOpen {
		return Stats{}, ErrClosed
	}
	keys := e.tree.Len()
	now := nowMs()
	// Expired entries not yet reaped are invisible, so they do not count.
	e.expiry.Ascend(func(ent *memEntry) bool {
		if !ent.expired(now) {
			return false
		}
		keys--
		return true
	})
	return Stats{
		Engine:  e.Name(),
		Keys:    uint64(keys),
		Reads:   e.reads.Load(),
		Writes:  e.writes.Load(),
		Deletes: e.deletes.Load(),
	}, nil
}
