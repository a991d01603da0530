package storage

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestModelEngine(tb testing.TB) StorageEngine {
	e := newModelEngine(conformanceConfig(""))
	if err := e.Init(""); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	return e
}

// TestModelConformance holds the oracle to the same suite as the engines,
// so a disagreement in the differential test points at the engine.
func TestModelConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) StorageEngine { return newTestModelEngine(t) })
}

// modelEngine is the oracle of the differential test: every operation under
// one mutex, a plain map, a sort per scan and a full copy per snapshot.
type modelEngine struct {
	maxValue int

	mu     sync.Mutex
	state  memState
	data   map[string]modelValue
	seq    int
	commit map[string]int // key -> seq of its newest commit, never pruned

	reads, writes, deletes uint64
}

type modelValue struct {
	v         string
	expiresAt int64 // Unix ms, 0 for none
	seq       int   // the commit that wrote it
}

func (m modelValue) meta() KeyMeta {
	km := KeyMeta{Version: uint64(m.seq)}
	if m.expiresAt != 0 {
		km.ExpiresAt = time.UnixMilli(m.expiresAt)
	}
	return km
}

func (m modelValue) live(now int64) bool { return m.expiresAt == 0 || m.expiresAt > now }

func newModelEngine(cfg Config) *modelEngine { return &modelEngine{maxValue: cfg.MaxValueSize} }

func (m *modelEngine) Name() string { return "model" }

func (m *modelEngine) Init(string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case memOpen:
		return ErrInvalidArgument
	case memClosed:
		return ErrClosed
	}
	m.state = memOpen
	m.data = make(map[string]modelValue)
	m.commit = make(map[string]int)
	return nil
}

func (m *modelEngine) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = memClosed
	return nil
}

// lock locks m if it is open.
func (m *modelEngine) lock() error {
	m.mu.Lock()
	if m.state != memOpen {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// apply commits ops (validated) under one sequence number; m is locked.
func (m *modelEngine) apply(ops []BatchOp) {
	m.seq++
	now := time.Now().UnixMilli()
	for _, op := range ops {
		m.commit[op.Key] = m.seq
		var exp int64
		if op.TTL > 0 {
			exp = now + op.TTL.Milliseconds()
		}
		if !op.ExpireAt.IsZero() {
			exp = max(op.ExpireAt.UnixMilli(), 1)
		}
		if op.Kind == OpDelete || (exp != 0 && exp <= now) {
			delete(m.data, op.Key)
			m.deletes++
			continue
		}
		m.data[op.Key] = modelValue{op.Value, exp, m.seq}
		m.writes++
	}
}

func (m *modelEngine) validate(ops []BatchOp) error {
	for _, op := range ops {
		if err := CheckKey(op.Key); err != nil {
			return err
		}
		switch op.Kind {
		case OpPut:
			if err := checkValue(op.Value, m.maxValue); err != nil {
				return err
			}
			if op.TTL != 0 {
				if err := checkTTL(op.TTL); err != nil {
					return err
				}
			}
			if err := checkExpiry(op); err != nil {
				return err
			}
		case OpDelete:
		default:
			return ErrInvalidArgument
		}
	}
	return nil
}

func (m *modelEngine) Write(_ context.Context, ops []BatchOp) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := m.validate(ops); err != nil {
		return err
	}
	if len(ops) > 0 {
		m.apply(ops)
	}
	return nil
}

func (m *modelEngine) Put(ctx context.Context, key, value string) error {
	return m.Write(ctx, []BatchOp{{Kind: OpPut, Key: key, Value: value}})
}

func (m *modelEngine) PutWithTTL(ctx context.Context, key, value string, ttl time.Duration) error {
	if ttl == 0 {
		ttl = -1 // zero means "no TTL" to Write, but is invalid here
	}
	return m.Write(ctx, []BatchOp{{Kind: OpPut, Key: key, Value: value, TTL: ttl}})
}

func (m *modelEngine) Delete(ctx context.Context, key string) error {
	return m.Write(ctx, []BatchOp{{Kind: OpDelete, Key: key}})
}

func (m *modelEngine) BatchPut(ctx context.Context, kvs map[string]string) error {
	var ops []BatchOp
	for k, v := range kvs {
		ops = append(ops, BatchOp{Kind: OpPut, Key: k, Value: v})
	}
	return m.Write(ctx, ops)
}

func (m *modelEngine) BatchDelete(ctx context.Context, keys []string) error {
	var ops []BatchOp
	for _, k := range keys {
		ops = append(ops, BatchOp{Kind: OpDelete, Key: k})
	}
	return m.Write(ctx, ops)
}

func (m *modelEngine) Get(ctx context.Context, key string) (string, error) {
	got, err := m.BatchGet(ctx, []string{key})
	if err != nil {
		return "", err
	}
	v, ok := got[key]
	if !ok {
		return "", ErrNotFound
	}
	return v, nil
}

func (m *modelEngine) BatchGet(_ context.Context, keys []string) (map[string]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return nil, err
		}
	}
	now := time.Now().UnixMilli()
	out := make(map[string]string)
	for _, k := range keys {
		m.reads++
		if mv, ok := m.data[k]; ok && mv.live(now) {
			out[k] = mv.v
		}
	}
	return out, nil
}

func (m *modelEngine) GetWithMeta(_ context.Context, key string) (string, KeyMeta, error) {
	if err := m.lock(); err != nil {
		return "", KeyMeta{}, err
	}
	defer m.mu.Unlock()
	if err := CheckKey(key); err != nil {
		return "", KeyMeta{}, err
	}
	m.reads++
	if mv, ok := m.data[key]; ok && mv.live(time.Now().UnixMilli()) {
		return mv.v, mv.meta(), nil
	}
	return "", KeyMeta{}, ErrNotFound
}

func (m *modelEngine) NewIterator(ctx context.Context, prefix string) (Iterator, error) {
	return m.scan(func(k string) bool { return strings.HasPrefix(k, prefix) })
}

func (m *modelEngine) NewRangeIterator(_ context.Context, start, end string) (Iterator, error) {
	return m.scan(func(k string) bool { return k >= start && (end == "" || k < end) })
}

func (m *modelEngine) scan(keep func(string) bool) (Iterator, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	now := time.Now().UnixMilli()
	var pairs []pair
	for k, mv := range m.data {
		if keep(k) && mv.live(now) {
			pairs = append(pairs, pair{k, mv.v})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	return &modelIterator{m: m, pairs: pairs, i: -1}, nil
}

type modelIterator struct {
	m      *modelEngine
	pairs  []pair
	i      int
	closed bool
	err    error
}

func (it *modelIterator) Next() bool {
	if it.closed || it.err != nil {
		return false
	}
	if err := it.m.lock(); err != nil {
		it.err = err
		return false
	}
	it.m.mu.Unlock()
	if it.i+1 >= len(it.pairs) {
		it.i = len(it.pairs)
		return false
	}
	it.i++
	return true
}

func (it *modelIterator) cur() pair {
	if it.closed || it.i < 0 || it.i >= len(it.pairs) {
		return pair{}
	}
	return it.pairs[it.i]
}

func (it *modelIterator) Key() string   { return it.cur().k }
func (it *modelIterator) Value() string { return it.cur().v }
func (it *modelIterator) Error() error  { return it.err }
func (it *modelIterator) Close() error  { it.closed = true; return nil }

func (m *modelEngine) BeginTransaction(context.Context) (Transaction, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return &modelTxn{
		m:      m,
		start:  m.seq,
		now:    time.Now().UnixMilli(),
		snap:   maps.Clone(m.data),
		reads:  make(map[string]bool),
		writes: make(map[string]BatchOp),
	}, nil
}

type modelTxn struct {
	m      *modelEngine
	start  int
	now    int64
	snap   map[string]modelValue
	reads  map[string]bool
	writes map[string]BatchOp
	done   bool
}

func (tx *modelTxn) check(key string) error {
	if tx.done {
		return ErrTxnDone
	}
	if err := tx.m.lock(); err != nil {
		return err
	}
	tx.m.mu.Unlock()
	return CheckKey(key)
}

func (tx *modelTxn) Put(key, value string) error {
	if err := tx.check(key); err != nil {
		return err
	}
	if err := checkValue(value, tx.m.maxValue); err != nil {
		return err
	}
	tx.writes[key] = BatchOp{Kind: OpPut, Key: key, Value: value}
	return nil
}

func (tx *modelTxn) Delete(key string) error {
	if err := tx.check(key); err != nil {
		return err
	}
	tx.writes[key] = BatchOp{Kind: OpDelete, Key: key}
	return nil
}

func (tx *modelTxn) PutWithExpiry(key, value string, expireAt time.Time) error {
	if err := tx.check(key); err != nil {
		return err
	}
	if err := checkValue(value, tx.m.maxValue); err != nil {
		return err
	}
	tx.writes[key] = BatchOp{Kind: OpPut, Key: key, Value: value, ExpireAt: expireAt}
	return nil
}

func (tx *modelTxn) Get(key string) (string, error) {
	v, _, err := tx.GetWithMeta(key)
	return v, err
}

func (tx *modelTxn) GetWithMeta(key string) (string, KeyMeta, error) {
	if err := tx.check(key); err != nil {
		return "", KeyMeta{}, err
	}
	if op, ok := tx.writes[key]; ok {
		if op.Kind == OpDelete || (!op.ExpireAt.IsZero() && max(op.ExpireAt.UnixMilli(), 1) <= tx.now) {
			return "", KeyMeta{}, ErrNotFound
		}
		km := KeyMeta{}
		if !op.ExpireAt.IsZero() {
			km.ExpiresAt = time.UnixMilli(op.ExpireAt.UnixMilli())
		}
		return op.Value, km, nil
	}
	tx.reads[key] = true
	tx.m.mu.Lock()
	tx.m.reads++
	tx.m.mu.Unlock()
	if mv, ok := tx.snap[key]; ok && mv.live(tx.now) {
		return mv.v, mv.meta(), nil
	}
	return "", KeyMeta{}, ErrNotFound
}

func (tx *modelTxn) Commit() error {
	if tx.done {
		return ErrTxnDone
	}
	tx.done = true
	m := tx.m
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if len(tx.writes) == 0 {
		return nil
	}
	for _, keys := range []map[string]bool{tx.reads, writtenKeys(tx.writes)} {
		for k := range keys {
			if m.commit[k] > tx.start {
				return fmt.Errorf("%w: %q", ErrConflict, k)
			}
		}
	}
	m.apply(slices.Collect(maps.Values(tx.writes)))
	return nil
}

func writtenKeys(w map[string]BatchOp) map[string]bool {
	out := make(map[string]bool, len(w))
	for k := range w {
		out[k] = true
	}
	return out
}

func (tx *modelTxn) Rollback() error {
	tx.done = true
	return nil
}

func (m *modelEngine) HealthCheck(context.Context) error {
	if err := m.lock(); err != nil {
		return err
	}
	m.mu.Unlock()
	return nil
}

func (m *modelEngine) Sync(ctx context.Context) error { return m.HealthCheck(ctx) }

func (m *modelEngine) Stats(context.Context) (Stats, error) {
	if err := m.lock(); err != nil {
		return Stats{}, err
	}
	defer m.mu.Unlock()
	now := time.Now().UnixMilli()
	var keys uint64
	for _, mv := range m.data {
		if mv.live(now) {
			keys++
		}
	}
	return Stats{Engine: m.Name(), Keys: keys, Reads: m.reads, Writes: m.writes, Deletes: m.deletes}, nil
}
