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

// value is empty, short, or long: 64 to 319 bytes, on both sides of the Rust
// engine's inline threshold (128 bytes), so some go through its value log
// and cache.
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
	// versions holds, per side, the last version GetWithMeta reported for
	// each key: the engines number versions differently, so answers are
	// compared by whether the version changed, not by its number.
	versions [2]map[string]uint64
	// expireAt is the absolute expiry of puts that take one: two hours
	// ahead, beyond diffLongTTL, so the two kinds of expiry stay apart.
	expireAt time.Time
}

// diffPast is an absolute expiry long gone: a put with it removes the key.
var diffPast = time.Unix(1_000_000, 0)

// runDifferential applies the operations ops decodes to a and b (both
// initialised and empty) and fails at the first differing answer: values,
// scans, and errors compared by sentinel.
func runDifferential(tb testing.TB, a, b StorageEngine, ops []byte) {
	tb.Helper()
	d := &differ{
		tb: tb, ctx: tb.Context(), a: a, b: b, r: opReader{b: ops},
		versions: [2]map[string]uint64{{}, {}},
		expireAt: time.Now().Add(2 * time.Hour).Truncate(time.Millisecond),
	}
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
	case 3, 4:
		k := r.key()
		d.both(fmt.Sprintf("Get(%q)", k), func(e StorageEngine) string { return getOutcome(e.Get(ctx, k)) })
	case 15:
		k := r.key()
		d.same(fmt.Sprintf("GetWithMeta(%q)", k), d.meta(0, k)(d.a.GetWithMeta(ctx, k)), d.meta(1, k)(d.b.GetWithMeta(ctx, k)))
	case 5:
		ops := make([]BatchOp, 1+r.byte()%5)
		for i := range ops {
			switch r.byte() % 6 {
			case 0:
				ops[i] = BatchOp{Kind: OpPut, Key: r.key(), Value: r.value()}
			case 1:
				ops[i] = BatchOp{Kind: OpDelete, Key: r.key()}
			case 2:
				ops[i] = BatchOp{Kind: OpPut, Key: r.key(), Value: r.value(), TTL: diffLongTTL}
			case 3:
				ops[i] = BatchOp{Kind: OpPut, Key: r.key(), Value: r.value(), ExpireAt: d.expireAt.Add(time.Duration(r.byte()) * time.Millisecond)}
			case 4:
				ops[i] = BatchOp{Kind: OpPut, Key: r.key(), Value: r.value(), ExpireAt: diffPast}
			default:
				// Both kinds of expiry at once: refused, and nothing is written.
				ops[i] = BatchOp{Kind: OpPut, Key: r.key(), Value: r.value(), TTL: diffLongTTL, ExpireAt: d.expireAt}
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
		switch sb % 8 {
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
		case 6:
			k := r.key()
			d.same(fmt.Sprintf("txn%d.GetWithMeta(%q)", i, k), d.meta(0, k)(txs[0][i].GetWithMeta(k)), d.meta(1, k)(txs[1][i].GetWithMeta(k)))
		case 7:
			k, v, at := r.key(), r.value(), d.expireAt
			if r.byte()%2 == 0 {
				at = diffPast
			}
			onTxn(fmt.Sprintf("PutWithExpiry(%q, %q, %v)", k, short(v), at), i, func(tx Transaction) string {
				return errOutcome(tx.PutWithExpiry(k, v, at))
			})
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
		case op.TTL != 0 && !op.ExpireAt.IsZero():
			parts[i] = fmt.Sprintf("put %q=%q ttl %v expire at %v", op.Key, short(op.Value), op.TTL, op.ExpireAt)
		case op.TTL != 0:
			parts[i] = fmt.Sprintf("put %q=%q ttl %v", op.Key, short(op.Value), op.TTL)
		case !op.ExpireAt.IsZero():
			parts[i] = fmt.Sprintf("put %q=%q expire at %v", op.Key, short(op.Value), op.ExpireAt)
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

// meta returns the describer of side's GetWithMeta answers for key: the
// value; the expiry, exact when absolute, "about diffLongTTL" for a TTL
// (each engine resolves it against its own clock); and whether the version
// is the one this side last reported for key (an own write, version 0,
// aside).
func (d *differ) meta(side int, key string) func(string, KeyMeta, error) string {
	return func(v string, m KeyMeta, err error) string {
		if err != nil {
			return errOutcome(err)
		}
		exp := "no expiry"
		if !m.ExpiresAt.IsZero() {
			if left := time.Until(m.ExpiresAt); left > diffLongTTL-time.Minute && left <= diffLongTTL {
				exp = "expires in about " + diffLongTTL.String()
			} else {
				exp = fmt.Sprintf("expires at %d ms", m.ExpiresAt.UnixMilli())
			}
		}
		version := "own write"
		if m.Version != 0 {
			last, seen := d.versions[side][key]
			switch {
			case !seen:
				version = "first version read"
			case last == m.Version:
				version = "same version"
			default:
				version = "new version"
			}
			d.versions[side][key] = m.Version
		}
		return fmt.Sprintf("%q, %s, %s", v, exp, version)
	}
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
