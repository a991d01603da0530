package storage

// Differential testing: runDifferential decodes a byte string into
// operations, applies each to two engines and fails at the first answer
// that differs. Any byte string is a valid program, so the fuzzer can
// mutate freely.
//
// In every build the memory engine is compared with modelEngine, the
// simplest engine that could be right (a map under one mutex, sorted per
// scan, copied per snapshot). A file built with -tags rust compares the
// Rust engine with the memory engine the same way, for example:
//
//	func TestRustDifferentialSeeded(t *testing.T) {
//		for i, ops := range seededDifferentialOps(200) {
//			t.Run(fmt.Sprint(i), func(t *testing.T) {
//				runDifferential(t, newTestRustEngine(t), newTestMemoryEngine(t), ops)
//			})
//		}
//	}
//
//	func FuzzRustDifferential(f *testing.F) {
//		addDifferentialSeeds(f)
//		f.Fuzz(func(t *testing.T, ops []byte) {
//			runDifferential(t, newTestRustEngine(t), newTestMemoryEngine(t), ops)
//		})
//	}
//
// and is run with: go test -tags rust -fuzz FuzzRustDifferential ./storage/

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// diffKeys is the key alphabet: prefixes of each other, NUL and 0xff bytes,
// and the empty key (invalid), so errors are compared too.
var diffKeys = []string{"a", "ab", "abc", "b", "b\x00", "ba", "c/1", "c/2", "\xff", "\xff\xff", "\x00", "zz", ""}

// diffPrefixes are the prefixes scans use.
var diffPrefixes = []string{"", "a", "ab", "b", "c/", "\xff", "\xff\xff", "\x00", "zz", "q"}

// diffLongTTL never passes during a test, so both sides agree on expiry.
const diffLongTTL = time.Hour

// opReader hands out the bytes of an op string, then zeros.
type opReader struct {
	b []byte
	i int
}

func (r *opReader) more() bool { return r.i < len(r.b) }

func (r *opReader) byte() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *opReader) key() string    { return diffKeys[int(r.byte())%len(diffKeys)] }
func (r *opReader) prefix() string { return diffPrefixes[int(r.byte())%len(diffPrefixes)] }

// value is empty, short, or long enough to leave the Rust engine's inline
// threshold (64 bytes) and go through its value log and cache.
func (r *opReader) value() string {
	b := r.byte()
	switch b % 4 {
	case 0:
		return ""
	case 3:
		return strings.Repeat(string(rune('a'+b%26)), 64+int(b))
	default:
		return fmt.Sprintf("v%d", b)
	}
}

// diffTraceLen is how many of the last ops a failure shows.
const diffTraceLen = 40

// differ applies each op to engines a and b and compares the answers.
type differ struct {
	tb    testing.TB
	ctx   context.Context
	a, b  StorageEngine
	r     opReader
	trace []string
}

// runDifferential applies the operations ops decodes to a and b (both
// initialised and empty) and fails at the first differing answer: values,
// scans, and errors compared by sentinel.
func runDifferential(tb testing.TB, a, b StorageEngine, ops []byte) {
	tb.Helper()
	d := &differ{tb: tb, ctx: tb.Context(), a: a, b: b, r: opReader{b: ops}}
	for d.r.more() {
		d.step()
	}
	d.same("final scan", scanOutcome(d.a.NewIterator(d.ctx, "")), scanOutcome(d.b.NewIterator(d.ctx, "")))
	d.same("final stats", statsOutcome(d.a.Stats(d.ctx)), statsOutcome(d.b.Stats(d.ctx)))
}

// same fails the test if the two answers to op desc differ.
func (d *differ) same(desc, ra, rb string) {
	d.tb.Helper()
	d.trace = append(d.trace, desc)
	if ra != rb {
		shown := d.trace[max(0, len(d.trace)-diffTraceLen):]
		d.tb.Fatalf("engines differ at op %d, %s:\n  %s: %s\n  %s: %s\nthe last %d ops:\n  %s",
			len(d.trace), desc, d.a.Name(), ra, d.b.Name(), rb, len(shown), strings.Join(shown, "\n  "))
	}
}

// both runs f on each engine and compares the answers.
func (d *differ) both(desc string, f func(e StorageEngine) string) {
	d.tb.Helper()
	d.same(desc, f(d.a), f(d.b))
}

func (d *differ) step() {
	ctx, r := d.ctx, &d.r
	switch op := r.byte() % 16; op {
	case 0, 1:
		k, v := r.key(), r.value()
		d.both(fmt.Sprintf("Put(%q, %q)", k, short(v)), func(e StorageEngine) string { return errOutcome(e.Put(ctx, k, v)) })
	case 2:
		k := r.key()
		d.both(fmt.Sprintf("Delete(%q)", k), func(e StorageEngine) string { return errOutcome(e.Delete(ctx, k)) })
	case 3, 4, 15:
		k := r.key()
		d.both(fmt.Sprintf("Get(%q)", k), func(e StorageEngine) string { return getOutcome(e.Get(ctx, k)) })
	case 5:
		ops := make([]BatchOp, 1+r.byte()%5)
		for i := range ops {
			switch r.byte() % 3 {
			case 0:
				ops[i] = BatchOp{Kind: OpPut, Key: r.key(), Value: r.value()}
			case 1:
				ops[i] = BatchOp{Kind: OpDelete, Key: r.key()}
			default:
				ops[i] = BatchOp{Kind: OpPut, Key: r.key(), Value: r.value(), TTL: diffLongTTL}
			}
		}
		d.both(fmt.Sprintf("Write(%s)", describeOps(ops)), func(e StorageEngine) string { return errOutcome(e.Write(ctx, ops)) })
	case 6:
		m := make(map[string]string)
		for range 1 + r.byte()%4 {
			m[r.key()] = r.value()
		}
		d.both(fmt.Sprintf("BatchPut(%s)", describeMap(m)), func(e StorageEngine) string { return errOutcome(e.BatchPut(ctx, m)) })
	case 7:
		keys := make([]string, 1+r.byte()%5)
		for i := range keys {
			keys[i] = r.key()
		}
		d.both(fmt.Sprintf("BatchGet(%q)", keys), func(e StorageEngine) string { return mapOutcome(e.BatchGet(ctx, keys)) })
	case 8:
		keys := make([]string, 1+r.byte()%3)
		for i := range keys {
			keys[i] = r.key()
		}
		d.both(fmt.Sprintf("BatchDelete(%q)", keys), func(e StorageEngine) string { return errOutcome(e.BatchDelete(ctx, keys)) })
	case 9:
		p := r.prefix()
		d.both(fmt.Sprintf("NewIterator(%q)", p), func(e StorageEngine) string { return scanOutcome(e.NewIterator(ctx, p)) })
	case 10:
		start, end := r.key(), r.key()
		d.both(fmt.Sprintf("NewRangeIterator(%q, %q)", start, end), func(e StorageEngine) string {
			return scanOutcome(e.NewRangeIterator(ctx, start, end))
		})
	case 11:
		d.txn()
	case 12:
		k, v := r.key(), r.value()
		d.both(fmt.Sprintf("PutWithTTL(%q, %q, %v)", k, short(v), diffLongTTL), func(e StorageEngine) string {
			return errOutcome(e.PutWithTTL(ctx, k, v, diffLongTTL))
		})
	case 13:
		d.iteratorAcrossWrites()
	case 14:
		d.both("Stats", func(e StorageEngine) string { return statsOutcome(e.Stats(ctx)) })
	}
}

// txn runs one or two interleaved transactions beside plain writes, then
// commits or rolls back each.
func (d *differ) txn() {
	ctx, r := d.ctx, &d.r
	n := 1 + int(r.byte()%2)
	txs := [2][]Transaction{}
	for range n {
		for side, e := range []StorageEngine{d.a, d.b} {
			tx, err := e.BeginTransaction(ctx)
			if err != nil {
				d.tb.Fatalf("%s: BeginTransaction: %v", e.Name(), err)
			}
			txs[side] = append(txs[side], tx)
		}
	}
	defer func() {
		for _, side := range txs {
			for _, tx := range side {
				_ = tx.Rollback()
			}
		}
	}()
	onTxn := func(desc string, i int, f func(tx Transaction) string) {
		d.tb.Helper()
		d.same(fmt.Sprintf("txn%d.%s", i, desc), f(txs[0][i]), f(txs[1][i]))
	}
	for range 1 + r.byte()%6 {
		sb := r.byte()
		i := int(sb>>4) % n
		switch sb % 6 {
		case 0, 1:
			k := r.key()
			onTxn(fmt.Sprintf("Get(%q)", k), i, func(tx Transaction) string { return getOutcome(tx.Get(k)) })
		case 2, 3:
			k, v := r.key(), r.value()
			onTxn(fmt.Sprintf("Put(%q, %q)", k, short(v)), i, func(tx Transaction) string { return errOutcome(tx.Put(k, v)) })
		case 4:
			k := r.key()
			onTxn(fmt.Sprintf("Delete(%q)", k), i, func(tx Transaction) string { return errOutcome(tx.Delete(k)) })
		case 5:
			// A plain write by another writer while the transactions are open.
			k, v := r.key(), r.value()
			d.both(fmt.Sprintf("Put(%q, %q) during a txn", k, short(v)), func(e StorageEngine) string { return errOutcome(e.Put(ctx, k, v)) })
		}
	}
	for i := range n {
		if r.byte()%3 == 2 {
			onTxn("Rollback", i, func(tx Transaction) string { return errOutcome(tx.Rollback()) })
		} else {
			onTxn("Commit", i, func(tx Transaction) string { return errOutcome(tx.Commit()) })
		}
	}
}

// iteratorAcrossWrites opens an iterator, writes, then drains it: the
// iterator must show the state from before the writes.
func (d *differ) iteratorAcrossWrites() {
	ctx, r := d.ctx, &d.r
	p := r.prefix()
	its := make([]Iterator, 2)
	for side, e := range []StorageEngine{d.a, d.b} {
		it, err := e.NewIterator(ctx, p)
		if err != nil {
			d.tb.Fatalf("%s: NewIterator(%q): %v", e.Name(), p, err)
		}
		its[side] = it
	}
	k, v, k2 := r.key(), r.value(), r.key()
	d.both(fmt.Sprintf("Put(%q, %q) with an iterator open", k, short(v)), func(e StorageEngine) string { return errOutcome(e.Put(ctx, k, v)) })
	d.both(fmt.Sprintf("Delete(%q) with an iterator open", k2), func(e StorageEngine) string { return errOutcome(e.Delete(ctx, k2)) })
	d.same(fmt.Sprintf("drain of NewIterator(%q) opened before the writes", p), scanOutcome(its[0], nil), scanOutcome(its[1], nil))
}

func describeMap(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%q=%q", k, short(m[k])))
	}
	return strings.Join(parts, ", ")
}

func describeOps(ops []BatchOp) string {
	parts := make([]string, len(ops))
	for i, op := range ops {
		switch {
		case op.Kind == OpDelete:
			parts[i] = fmt.Sprintf("del %q", op.Key)
		case op.TTL != 0:
			parts[i] = fmt.Sprintf("put %q=%q ttl %v", op.Key, short(op.Value), op.TTL)
		default:
			parts[i] = fmt.Sprintf("put %q=%q", op.Key, short(op.Value))
		}
	}
	return strings.Join(parts, ", ")
}

// sentinels are the errors answers are compared by, most specific first.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrNotFound", ErrNotFound},
	{"ErrConflict", ErrConflict},
	{"ErrClosed", ErrClosed},
	{"ErrInvalidKey", ErrInvalidKey},
	{"ErrValueTooLarge", ErrValueTooLarge},
	{"ErrInvalidArgument", ErrInvalidArgument},
	{"ErrCorruption", ErrCorruption},
	{"ErrTxnDone", ErrTxnDone},
}

// errOutcome names err by its sentinel. An error that wraps none is a bug
// in itself; its text makes the answers differ.
func errOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return fmt.Sprintf("unclassified error %q", err)
}

func getOutcome(v string, err error) string {
	if err != nil {
		return errOutcome(err)
	}
	return fmt.Sprintf("%q", v)
}

func mapOutcome(m map[string]string, err error) string {
	if err != nil {
		return errOutcome(err)
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%q=%q ", k, m[k])
	}
	return fmt.Sprintf("%d found: %s", len(m), b.String())
}

// scanOutcome drains and closes it.
func scanOutcome(it Iterator, err error) string {
	if err != nil {
		return errOutcome(err)
	}
	var b strings.Builder
	for it.Next() {
		fmt.Fprintf(&b, "%q=%q ", it.Key(), it.Value())
	}
	fmt.Fprintf(&b, "end: %s", errOutcome(it.Error()))
	if err := it.Close(); err != nil {
		fmt.Fprintf(&b, ", Close: %s", errOutcome(err))
	}
	return b.String()
}

// statsOutcome compares only the live key count: counters and disk figures
// are the engines' own business.
func statsOutcome(s Stats, err error) string {
	if err != nil {
		return errOutcome(err)
	}
	return fmt.Sprintf("%d keys", s.Keys)
}

// seededDifferentialOps returns n random op strings, the same in every run.
func seededDifferentialOps(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		r := rand.New(rand.NewPCG(uint64(i), 0x6d616e746973))
		ops := make([]byte, 100+r.IntN(900))
		for j := range ops {
			ops[j] = byte(r.UintN(256))
		}
		out[i] = ops
	}
	return out
}

// addDifferentialSeeds gives a fuzz target its seed corpus.
func addDifferentialSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x00\x00\x01\x03\x00\x0b\x11\x00\x01\x05\x00\x00"))
	for _, ops := range seededDifferentialOps(8) {
		f.Add(ops)
	}
}

func newTestModelEngine(tb testing.TB) StorageEngine {
	e := newModelEngine(conformanceConfig(""))
	if err := e.Init(""); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	return e
}

func newDifferentialMemoryEngine(tb testing.TB) StorageEngine {
	e := NewMemoryEngine(conformanceConfig(""))
	if err := e.Init(""); err != nil {
		tb.Fatalf("Init: %v", err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

func TestDifferentialSeeded(t *testing.T) {
	for i, ops := range seededDifferentialOps(200) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			runDifferential(t, newDifferentialMemoryEngine(t), newTestModelEngine(t), ops)
		})
	}
}

func FuzzDifferential(f *testing.F) {
	addDifferentialSeeds(f)
	f.Fuzz(func(t *testing.T, ops []byte) {
		runDifferential(t, newDifferentialMemoryEngine(t), newTestModelEngine(t), ops)
	})
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
		if op.Kind == OpDelete {
			delete(m.data, op.Key)
			m.deletes++
			continue
		}
		var exp int64
		if op.TTL > 0 {
			exp = now + op.TTL.Milliseconds()
		}
		m.data[op.Key] = modelValue{op.Value, exp}
		m.writes++
	}
}

func (m *modelEngine) validate(ops []BatchOp) error {
	for _, op := range ops {
		if err := checkKey(op.Key); err != nil {
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
		if err := checkKey(k); err != nil {
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
	return checkKey(key)
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

func (tx *modelTxn) Get(key string) (string, error) {
	if err := tx.check(key); err != nil {
		return "", err
	}
	if op, ok := tx.writes[key]; ok {
		if op.Kind == OpDelete {
			return "", ErrNotFound
		}
		return op.Value, nil
	}
	tx.reads[key] = true
	tx.m.mu.Lock()
	tx.m.reads++
	tx.m.mu.Unlock()
	if mv, ok := tx.snap[key]; ok && mv.live(tx.now) {
		return mv.v, nil
	}
	return "", ErrNotFound
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
