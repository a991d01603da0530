package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// conformanceMaxValueSize is the value limit of every engine under
// runConformance: small enough that the limit is cheap to test.
const conformanceMaxValueSize = 1 << 20

// conformanceConfig is the configuration an engine under runConformance must
// be built with (other fields, such as Sync, may be changed; MaxValueSize not).
func conformanceConfig(dataDir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	cfg.MaxValueSize = conformanceMaxValueSize
	return cfg
}

// runConformance runs the one conformance suite every engine must pass.
// newEngine returns a fresh engine built from conformanceConfig, already
// initialised in its own t.TempDir(), and registers its Close with t.Cleanup
// (after calling t.TempDir, so Close runs before the directory is removed).
// A case may close the engine itself; Close must then be idempotent.
func runConformance(t *testing.T, newEngine func(t *testing.T) StorageEngine) {
	for _, c := range conformanceCases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newEngine(t))
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(t *testing.T, e StorageEngine)
}{
	{"CRUD", testCRUD},
	{"BinaryKeysAndValues", testBinary},
	{"KeyLimits", testKeyLimits},
	{"ValueLimit", testValueLimit},
	{"TTL", testTTL},
	{"InvalidTTL", testInvalidTTL},
	{"Batches", testBatches},
	{"WriteMixed", testWriteMixed},
	{"PrefixIteration", testPrefixIteration},
	{"RangeIteration", testRangeIteration},
	{"IteratorLifecycle", testIteratorLifecycle},
	{"IteratorPointInTime", testIteratorPointInTime},
	{"IteratorManyKeys", testIteratorManyKeys},
	{"TxnReadYourWrites", testTxnReadYourWrites},
	{"TxnSnapshotReads", testTxnSnapshotReads},
	{"TxnWriteWriteConflict", testTxnWriteWriteConflict},
	{"TxnReadWriteConflict", testTxnReadWriteConflict},
	{"TxnNoFalseConflict", testTxnNoFalseConflict},
	{"TxnReadOnlyCommit", testTxnReadOnlyCommit},
	{"TxnRollback", testTxnRollback},
	{"TxnDone", testTxnDone},
	{"Closed", testClosed},
	{"InitTwice", testInitTwice},
	{"HealthAndSync", testHealthAndSync},
	{"Stats", testStats},
	{"Concurrent", testConcurrent},
	{"KeyMeta", testKeyMeta},
	{"KeyMetaExpireAt", testKeyMetaExpireAt},
	{"TxnKeyMeta", testTxnKeyMeta},
}

// pair is one key-value pair seen by an iterator.
type pair struct{ k, v string }

func (p pair) String() string { return fmt.Sprintf("%q=%q", p.k, p.v) }

func mustPut(t *testing.T, e StorageEngine, k, v string) {
	t.Helper()
	if err := e.Put(t.Context(), k, v); err != nil {
		t.Fatalf("Put(%q): %v", short(k), err)
	}
}

func mustDelete(t *testing.T, e StorageEngine, k string) {
	t.Helper()
	if err := e.Delete(t.Context(), k); err != nil {
		t.Fatalf("Delete(%q): %v", short(k), err)
	}
}

func wantValue(t *testing.T, e StorageEngine, k, want string) {
	t.Helper()
	got, err := e.Get(t.Context(), k)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %q", short(k), err, short(want))
	}
	if got != want {
		t.Fatalf("Get(%q) = %q (%d bytes), want %q (%d bytes)", short(k), short(got), len(got), short(want), len(want))
	}
}

func wantMissing(t *testing.T, e StorageEngine, k string) {
	t.Helper()
	got, err := e.Get(t.Context(), k)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", short(k), short(got), err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// short cuts a key or value for a failure message.
func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// drain reads it to the end, checks it ended without error, and closes it.
func drain(t *testing.T, it Iterator) []pair {
	t.Helper()
	var out []pair
	for it.Next() {
		out = append(out, pair{strings.Clone(it.Key()), strings.Clone(it.Value())})
	}
	noErr(t, "iterator", it.Error())
	noErr(t, "iterator Close", it.Close())
	return out
}

func scanPrefix(t *testing.T, e StorageEngine, prefix string) []pair {
	t.Helper()
	it, err := e.NewIterator(t.Context(), prefix)
	noErr(t, fmt.Sprintf("NewIterator(%q)", prefix), err)
	return drain(t, it)
}

func scanRange(t *testing.T, e StorageEngine, start, end string) []pair {
	t.Helper()
	it, err := e.NewRangeIterator(t.Context(), start, end)
	noErr(t, fmt.Sprintf("NewRangeIterator(%q, %q)", start, end), err)
	return drain(t, it)
}

func wantPairs(t *testing.T, what string, got, want []pair) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// sortedPairs returns m's pairs in key order, keeping those keep accepts.
func sortedPairs(m map[string]string, keep func(k string) bool) []pair {
	var out []pair
	for k, v := range m {
		if keep(k) {
			out = append(out, pair{k, v})
		}
	}
	slices.SortFunc(out, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	return out
}

func begin(t *testing.T, e StorageEngine) Transaction {
	t.Helper()
	tx, err := e.BeginTransaction(t.Context())
	noErr(t, "BeginTransaction", err)
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

func txnWant(t *testing.T, tx Transaction, k, want string) {
	t.Helper()
	got, err := tx.Get(k)
	if err != nil || got != want {
		t.Fatalf("txn Get(%q) = %q, %v; want %q", k, got, err, want)
	}
}

func txnWantMissing(t *testing.T, tx Transaction, k string) {
	t.Helper()
	got, err := tx.Get(k)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("txn Get(%q) = %q, %v; want ErrNotFound", k, got, err)
	}
}

func testCRUD(t *testing.T, e StorageEngine) {
	wantMissing(t, e, "a")
	mustPut(t, e, "a", "1")
	wantValue(t, e, "a", "1")
	mustPut(t, e, "a", "2")
	wantValue(t, e, "a", "2")
	mustDelete(t, e, "a")
	wantMissing(t, e, "a")
	mustDelete(t, e, "a")
	mustDelete(t, e, "never-existed")
	mustPut(t, e, "a", "3")
	wantValue(t, e, "a", "3")
	// An empty value is a present key.
	mustPut(t, e, "empty", "")
	wantValue(t, e, "empty", "")
	got, err := e.BatchGet(t.Context(), []string{"empty"})
	noErr(t, "BatchGet", err)
	if v, ok := got["empty"]; !ok || v != "" {
		t.Fatalf("BatchGet of an empty value = %q, %v", v, ok)
	}
	wantPairs(t, "scan", scanPrefix(t, e, ""), []pair{{"a", "3"}, {"empty", ""}})
}

func testBinary(t *testing.T, e StorageEngine) {
	var all strings.Builder
	for b := range 256 {
		all.WriteByte(byte(b))
	}
	m := map[string]string{
		"\x00":         "nul key",
		"\x00\x00":     "\x00",
		"a\x00b":       "a\x00b",
		"\xff":         "\xff",
		"\xff\xff":     "\xff\xff\x00",
		"a/b":          "slash",
		"/":            "/",
		"a\xffb":       "not utf-8 \xfe",
		"\x80\x81":     all.String(),
		"é":            "é",
		"with\nnl\r\t": "\x00\xff\x00",
		"long-value":   strings.Repeat("\x00\xff", 5000),
	}
	for k, v := range m {
		mustPut(t, e, k, v)
	}
	for k, v := range m {
		wantValue(t, e, k, v)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	got, err := e.BatchGet(t.Context(), keys)
	noErr(t, "BatchGet", err)
	if !mapsEqual(got, m) {
		t.Fatalf("BatchGet of binary keys differs: %q", got)
	}
	wantPairs(t, "scan in byte order", scanPrefix(t, e, ""), sortedPairs(m, func(string) bool { return true }))
	noErr(t, "Write", e.Write(t.Context(), []BatchOp{{Kind: OpDelete, Key: "\x00"}, {Kind: OpPut, Key: "\xff", Value: "\x00"}}))
	wantMissing(t, e, "\x00")
	wantValue(t, e, "\xff", "\x00")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testKeyLimits(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	longest := strings.Repeat("k", MaxKeySize)
	for _, bad := range []string{"", longest + "k"} {
		what := fmt.Sprintf("key of %d bytes", len(bad))
		wantErr(t, what+": Put", e.Put(ctx, bad, "v"), ErrInvalidKey)
		_, err := e.Get(ctx, bad)
		wantErr(t, what+": Get", err, ErrInvalidKey)
		wantErr(t, what+": Delete", e.Delete(ctx, bad), ErrInvalidKey)
		wantErr(t, what+": PutWithTTL", e.PutWithTTL(ctx, bad, "v", time.Hour), ErrInvalidKey)
		wantErr(t, what+": BatchPut", e.BatchPut(ctx, map[string]string{"ok": "v", bad: "v"}), ErrInvalidKey)
		_, err = e.BatchGet(ctx, []string{"ok", bad})
		wantErr(t, what+": BatchGet", err, ErrInvalidKey)
		wantErr(t, what+": BatchDelete", e.BatchDelete(ctx, []string{"ok", bad}), ErrInvalidKey)
		wantErr(t, what+": Write put", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "ok", Value: "v"}, {Kind: OpPut, Key: bad}}), ErrInvalidKey)
		wantErr(t, what+": Write delete", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "ok", Value: "v"}, {Kind: OpDelete, Key: bad}}), ErrInvalidKey)
		tx := begin(t, e)
		wantErr(t, what+": txn Put", tx.Put(bad, "v"), ErrInvalidKey)
		_, err = tx.Get(bad)
		wantErr(t, what+": txn Get", err, ErrInvalidKey)
		wantErr(t, what+": txn Delete", tx.Delete(bad), ErrInvalidKey)
		noErr(t, "Rollback", tx.Rollback())
		// Nothing of a rejected batch was applied.
		wantMissing(t, e, "ok")
	}
	for _, k := range []string{longest, strings.Repeat("\xff", MaxKeySize), "x"} {
		mustPut(t, e, k, "v")
		wantValue(t, e, k, "v")
	}
	got := scanPrefix(t, e, "kkkk")
	if len(got) != 1 || got[0].k != longest {
		t.Fatalf("prefix scan of the longest key returned %d pairs", len(got))
	}
	mustDelete(t, e, longest)
	wantMissing(t, e, longest)
}

func testValueLimit(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	largest := strings.Repeat("v", conformanceMaxValueSize)
	over := largest + "v"
	mustPut(t, e, "largest", largest)
	wantValue(t, e, "largest", largest)
	wantErr(t, "Put", e.Put(ctx, "over", over), ErrValueTooLarge)
	wantErr(t, "PutWithTTL", e.PutWithTTL(ctx, "over", over, time.Hour), ErrValueTooLarge)
	wantErr(t, "BatchPut", e.BatchPut(ctx, map[string]string{"ok": "v", "over": over}), ErrValueTooLarge)
	wantErr(t, "Write", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "ok", Value: "v"}, {Kind: OpPut, Key: "over", Value: over}}), ErrValueTooLarge)
	wantMissing(t, e, "over")
	wantMissing(t, e, "ok")
	tx := begin(t, e)
	wantErr(t, "txn Put", tx.Put("over", over), ErrValueTooLarge)
	// A rejected op leaves the transaction usable.
	noErr(t, "txn Put", tx.Put("ok", "v"))
	noErr(t, "Commit", tx.Commit())
	wantValue(t, e, "ok", "v")
	wantMissing(t, e, "over")
}

func testTTL(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	// Long enough for the writes below on a replicated engine under load.
	const ttl = 400 * time.Millisecond
	noErr(t, "PutWithTTL", e.PutWithTTL(ctx, "t1", "v1", ttl))
	noErr(t, "PutWithTTL", e.PutWithTTL(ctx, "t2", "v2", ttl))
	mustPut(t, e, "t2", "v2b") // a plain put clears the TTL
	noErr(t, "PutWithTTL", e.PutWithTTL(ctx, "t5", "v5", ttl))
	mustDelete(t, e, "t5")
	noErr(t, "PutWithTTL", e.PutWithTTL(ctx, "t6", "v6", time.Hour))
	noErr(t, "Write", e.Write(ctx, []BatchOp{
		{Kind: OpPut, Key: "t3", Value: "v3", TTL: ttl},
		{Kind: OpPut, Key: "t4", Value: "v4"},
	}))
	mustPut(t, e, "keep", "k")
	start := time.Now()
	before, err := e.NewIterator(ctx, "t")
	noErr(t, "NewIterator", err)
	if time.Since(start) < ttl/2 {
		wantValue(t, e, "t1", "v1")
		wantValue(t, e, "t3", "v3")
	}
	time.Sleep(ttl + 100*time.Millisecond)

	wantMissing(t, e, "t1")
	wantMissing(t, e, "t3")
	wantMissing(t, e, "t5")
	wantValue(t, e, "t2", "v2b")
	wantValue(t, e, "t4", "v4")
	wantValue(t, e, "t6", "v6")
	wantValue(t, e, "keep", "k")
	got, err := e.BatchGet(ctx, []string{"t1", "t2", "t3", "t4"})
	noErr(t, "BatchGet", err)
	if !mapsEqual(got, map[string]string{"t2": "v2b", "t4": "v4"}) {
		t.Fatalf("BatchGet after expiry = %q", got)
	}
	wantPairs(t, "scan after expiry", scanPrefix(t, e, "t"), []pair{{"t2", "v2b"}, {"t4", "v4"}, {"t6", "v6"}})
	wantPairs(t, "range after expiry", scanRange(t, e, "t1", "t4"), []pair{{"t2", "v2b"}})
	// An iterator judges TTL when it is created.
	wantPairs(t, "iterator made before expiry", drain(t, before),
		[]pair{{"t1", "v1"}, {"t2", "v2b"}, {"t3", "v3"}, {"t4", "v4"}, {"t6", "v6"}})
	// An expired key can be written again.
	mustPut(t, e, "t1", "again")
	wantValue(t, e, "t1", "again")
}

func testInvalidTTL(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	for _, ttl := range []time.Duration{0, -time.Second, 500 * time.Microsecond} {
		wantErr(t, fmt.Sprintf("PutWithTTL(%v)", ttl), e.PutWithTTL(ctx, "k", "v", ttl), ErrInvalidArgument)
	}
	for _, ttl := range []time.Duration{-time.Second, 500 * time.Microsecond} {
		err := e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "ok", Value: "v"}, {Kind: OpPut, Key: "k", Value: "v", TTL: ttl}})
		wantErr(t, fmt.Sprintf("Write with TTL %v", ttl), err, ErrInvalidArgument)
	}
	wantMissing(t, e, "k")
	wantMissing(t, e, "ok")
}

func testBatches(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	noErr(t, "BatchPut", e.BatchPut(ctx, map[string]string{"a": "1", "b": "2", "c": "3"}))
	got, err := e.BatchGet(ctx, []string{"a", "b", "c", "missing", "a"})
	noErr(t, "BatchGet", err)
	if !mapsEqual(got, map[string]string{"a": "1", "b": "2", "c": "3"}) {
		t.Fatalf("BatchGet = %q", got)
	}
	noErr(t, "empty BatchPut", e.BatchPut(ctx, nil))
	noErr(t, "empty BatchDelete", e.BatchDelete(ctx, nil))
	got, err = e.BatchGet(ctx, nil)
	noErr(t, "empty BatchGet", err)
	if len(got) != 0 {
		t.Fatalf("empty BatchGet = %q", got)
	}
	noErr(t, "BatchDelete", e.BatchDelete(ctx, []string{"a", "missing", "a"}))
	wantMissing(t, e, "a")
	wantValue(t, e, "b", "2")
	noErr(t, "BatchPut", e.BatchPut(ctx, map[string]string{"b": "22", "d": "4"}))
	wantValue(t, e, "b", "22")
	wantValue(t, e, "d", "4")
	wantErr(t, "BatchPut with a bad key", e.BatchPut(ctx, map[string]string{"x": "1", "": "2"}), ErrInvalidKey)
	wantMissing(t, e, "x")
	wantErr(t, "BatchDelete with a bad key", e.BatchDelete(ctx, []string{"b", ""}), ErrInvalidKey)
	wantValue(t, e, "b", "22")
	wantPairs(t, "scan", scanPrefix(t, e, ""), []pair{{"b", "22"}, {"c", "3"}, {"d", "4"}})
}

func testWriteMixed(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	mustPut(t, e, "pre", "0")
	mustPut(t, e, "gone", "0")
	noErr(t, "Write", e.Write(ctx, []BatchOp{
		{Kind: OpPut, Key: "a", Value: "1"},
		{Kind: OpPut, Key: "b", Value: "1"},
		{Kind: OpDelete, Key: "a"},
		{Kind: OpPut, Key: "c", Value: "1"},
		{Kind: OpPut, Key: "b", Value: "2"},
		{Kind: OpDelete, Key: "gone"},
		{Kind: OpDelete, Key: "missing"},
		{Kind: OpPut, Key: "d", Value: "1"},
		{Kind: OpDelete, Key: "d"},
		{Kind: OpDelete, Key: "e"},
		{Kind: OpPut, Key: "e", Value: "5"},
		{Kind: OpPut, Key: "f", Value: "1", TTL: time.Hour},
		{Kind: OpPut, Key: "f", Value: "2"},
	}))
	wantPairs(t, "after Write", scanPrefix(t, e, ""),
		[]pair{{"b", "2"}, {"c", "1"}, {"e", "5"}, {"f", "2"}, {"pre", "0"}})
	noErr(t, "nil Write", e.Write(ctx, nil))
	noErr(t, "empty Write", e.Write(ctx, []BatchOp{}))
	err := e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "g", Value: "1"}, {Kind: OpKind(7), Key: "h"}})
	wantErr(t, "Write with an unknown op kind", err, ErrInvalidArgument)
	wantMissing(t, e, "g")
	wantMissing(t, e, "h")
}

// iterKeys has prefixes of each other, NULs and 0xff bytes.
var iterKeys = []string{
	"a", "ab", "abc", "abd", "ac", "b", "a\xff", "a\xff\xff", "b\x00", "\x00",
	"\xff", "\xff\xff", "\xff\xffa", "\xff\xff\xff\xff", "c/d", "c/d/e", "c0",
}

func putIterKeys(t *testing.T, e StorageEngine) map[string]string {
	m := make(map[string]string, len(iterKeys))
	for i, k := range iterKeys {
		m[k] = fmt.Sprintf("v%d", i)
	}
	noErr(t, "BatchPut", e.BatchPut(t.Context(), m))
	return m
}

func testPrefixIteration(t *testing.T, e StorageEngine) {
	m := putIterKeys(t, e)
	for _, prefix := range []string{"", "a", "ab", "abc", "a\xff", "\xff", "\xff\xff", "\xff\xff\xff", "\xff\xff\xff\xff\xff", "\x00", "c/", "c/d", "zz", "b"} {
		want := sortedPairs(m, func(k string) bool { return strings.HasPrefix(k, prefix) })
		wantPairs(t, fmt.Sprintf("prefix %q", prefix), scanPrefix(t, e, prefix), want)
	}
}

func testRangeIteration(t *testing.T, e StorageEngine) {
	m := putIterKeys(t, e)
	for _, r := range [][2]string{
		{"", ""}, {"a", "b"}, {"ab", "ac"}, {"abc", ""}, {"b\x00", "\xff"}, {"\xff", ""},
		{"c", "c"}, {"c", "b"}, {"a\xff", "b"}, {"", "a"}, {"", "ab"}, {"aa", "abd"},
		{"\x00", "\x00\x00"}, {"\xff\xff", "\xff\xff\xff"}, {"zz", ""},
	} {
		start, end := r[0], r[1]
		want := sortedPairs(m, func(k string) bool { return k >= start && (end == "" || k < end) })
		wantPairs(t, fmt.Sprintf("range [%q, %q)", start, end), scanRange(t, e, start, end), want)
	}
}

func testIteratorLifecycle(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	it, err := e.NewIterator(ctx, "")
	noErr(t, "NewIterator", err)
	if it.Next() {
		t.Fatalf("empty engine: Next = true (key %q)", it.Key())
	}
	noErr(t, "Error", it.Error())
	if it.Next() {
		t.Fatal("Next after the end = true")
	}
	noErr(t, "Close", it.Close())
	noErr(t, "second Close", it.Close())
	if it.Next() {
		t.Fatal("Next after Close = true")
	}

	m := make(map[string]string)
	for i := range 1000 {
		m[fmt.Sprintf("k%04d", i)] = fmt.Sprintf("v%d", i)
	}
	noErr(t, "BatchPut", e.BatchPut(ctx, m))
	got := scanPrefix(t, e, "k")
	wantPairs(t, "1000 keys", got, sortedPairs(m, func(string) bool { return true }))

	// Close in the middle.
	it, err = e.NewRangeIterator(ctx, "k0100", "")
	noErr(t, "NewRangeIterator", err)
	for i := range 10 {
		if !it.Next() {
			t.Fatalf("Next %d = false", i)
		}
		if want := fmt.Sprintf("k%04d", 100+i); it.Key() != want || it.Value() != m[want] {
			t.Fatalf("entry %d = %q=%q, want %q", i, it.Key(), it.Value(), want)
		}
	}
	noErr(t, "Close", it.Close())
	if it.Next() {
		t.Fatal("Next after Close = true")
	}
	noErr(t, "second Close", it.Close())
}

func testIteratorPointInTime(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	m := make(map[string]string)
	for i := range 200 {
		m[fmt.Sprintf("k%03d", i)] = "old"
	}
	noErr(t, "BatchPut", e.BatchPut(ctx, m))
	it, err := e.NewIterator(ctx, "k")
	noErr(t, "NewIterator", err)
	rit, err := e.NewRangeIterator(ctx, "k050", "k150")
	noErr(t, "NewRangeIterator", err)

	mustPut(t, e, "k000", "new")
	mustDelete(t, e, "k001")
	mustPut(t, e, "k0005", "new")
	noErr(t, "BatchPut", e.BatchPut(ctx, map[string]string{"k100": "new", "k1000": "new"}))
	noErr(t, "BatchDelete", e.BatchDelete(ctx, []string{"k060", "k199"}))
	noErr(t, "Write", e.Write(ctx, []BatchOp{{Kind: OpDelete, Key: "k002"}, {Kind: OpPut, Key: "k003", Value: "new"}}))
	tx := begin(t, e)
	noErr(t, "txn Put", tx.Put("k004", "new"))
	noErr(t, "Commit", tx.Commit())

	all := sortedPairs(m, func(string) bool { return true })
	wantPairs(t, "prefix iterator made before the writes", drain(t, it), all)
	wantPairs(t, "range iterator made before the writes", drain(t, rit),
		sortedPairs(m, func(k string) bool { return k >= "k050" && k < "k150" }))

	// Writes between steps of an open iterator are invisible to it too.
	it2, err := e.NewIterator(ctx, "")
	noErr(t, "NewIterator", err)
	var got []pair
	for i := 0; it2.Next(); i++ {
		got = append(got, pair{strings.Clone(it2.Key()), strings.Clone(it2.Value())})
		mustPut(t, e, fmt.Sprintf("k%03d", i+1), "newer")
		mustPut(t, e, fmt.Sprintf("k%03da", i), "newer")
		mustDelete(t, e, fmt.Sprintf("k%03d", i+2))
	}
	noErr(t, "iterator", it2.Error())
	noErr(t, "Close", it2.Close())
	want := make(map[string]string, len(m))
	for k, v := range m {
		want[k] = v
	}
	want["k000"] = "new"
	delete(want, "k001")
	want["k0005"] = "new"
	want["k100"] = "new"
	want["k1000"] = "new"
	delete(want, "k060")
	delete(want, "k199")
	delete(want, "k002")
	want["k003"] = "new"
	want["k004"] = "new"
	wantPairs(t, "iterator made after the writes", got, sortedPairs(want, func(string) bool { return true }))
}

func testIteratorManyKeys(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	const n, batch = 20000, 1000
	for b := 0; b < n; b += batch {
		m := make(map[string]string, batch)
		for i := b; i < b+batch; i++ {
			m[fmt.Sprintf("key/%06d", i)] = fmt.Sprintf("value-%d", i)
		}
		noErr(t, "BatchPut", e.BatchPut(ctx, m))
	}
	it, err := e.NewIterator(ctx, "key/")
	noErr(t, "NewIterator", err)
	for b := 0; b < n; b += batch {
		keys := make([]string, 0, batch)
		for i := b; i < b+batch; i++ {
			keys = append(keys, fmt.Sprintf("key/%06d", i))
		}
		noErr(t, "BatchDelete", e.BatchDelete(ctx, keys))
	}
	i := 0
	for ; it.Next(); i++ {
		if want := fmt.Sprintf("key/%06d", i); it.Key() != want || it.Value() != fmt.Sprintf("value-%d", i) {
			t.Fatalf("entry %d = %q=%q, want key %q", i, it.Key(), it.Value(), want)
		}
	}
	noErr(t, "iterator", it.Error())
	noErr(t, "Close", it.Close())
	if i != n {
		t.Fatalf("iterator saw %d keys, want %d", i, n)
	}
	if got := scanPrefix(t, e, "key/"); len(got) != 0 {
		t.Fatalf("after deleting every key a scan saw %d", len(got))
	}
}

func testTxnReadYourWrites(t *testing.T, e StorageEngine) {
	mustPut(t, e, "a", "0")
	mustPut(t, e, "b", "0")
	tx := begin(t, e)
	noErr(t, "txn Put", tx.Put("a", "1"))
	txnWant(t, tx, "a", "1")
	wantValue(t, e, "a", "0")
	noErr(t, "txn Delete", tx.Delete("b"))
	txnWantMissing(t, tx, "b")
	wantValue(t, e, "b", "0")
	noErr(t, "txn Put", tx.Put("c", "1"))
	noErr(t, "txn Delete", tx.Delete("c"))
	txnWantMissing(t, tx, "c")
	noErr(t, "txn Put", tx.Put("d", "1"))
	noErr(t, "txn Put", tx.Put("d", "2"))
	txnWant(t, tx, "d", "2")
	noErr(t, "txn Put", tx.Put("e", ""))
	txnWant(t, tx, "e", "")
	wantPairs(t, "scan during the txn", scanPrefix(t, e, ""), []pair{{"a", "0"}, {"b", "0"}})
	noErr(t, "Commit", tx.Commit())
	wantPairs(t, "scan after Commit", scanPrefix(t, e, ""), []pair{{"a", "1"}, {"d", "2"}, {"e", ""}})
}

func testTxnSnapshotReads(t *testing.T, e StorageEngine) {
	mustPut(t, e, "a", "0")
	mustPut(t, e, "gone", "0")
	tx := begin(t, e)
	mustPut(t, e, "a", "1")
	mustPut(t, e, "new", "1")
	mustDelete(t, e, "gone")
	txnWant(t, tx, "a", "0")
	txnWantMissing(t, tx, "new")
	txnWant(t, tx, "gone", "0")
	noErr(t, "read-only Commit", tx.Commit())
	wantValue(t, e, "a", "1")
}

func testTxnWriteWriteConflict(t *testing.T, e StorageEngine) {
	mustPut(t, e, "k", "0")
	tx1 := begin(t, e)
	tx2 := begin(t, e)
	noErr(t, "tx1 Put", tx1.Put("k", "1"))
	noErr(t, "tx2 Put", tx2.Put("k", "2"))
	noErr(t, "tx2 Put", tx2.Put("other", "2"))
	noErr(t, "tx1 Commit", tx1.Commit())
	wantErr(t, "tx2 Commit", tx2.Commit(), ErrConflict)
	wantValue(t, e, "k", "1")
	wantMissing(t, e, "other")

	// A blind write conflicts with a plain Put of the same key.
	tx3 := begin(t, e)
	noErr(t, "tx3 Put", tx3.Put("k", "3"))
	mustPut(t, e, "k", "plain")
	wantErr(t, "tx3 Commit", tx3.Commit(), ErrConflict)
	wantValue(t, e, "k", "plain")
}

func testTxnReadWriteConflict(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	writers := []struct {
		name  string
		write func(k string) error
	}{
		{"Put", func(k string) error { return e.Put(ctx, k, "x") }},
		{"PutWithTTL", func(k string) error { return e.PutWithTTL(ctx, k, "x", time.Hour) }},
		{"Delete", func(k string) error { return e.Delete(ctx, k) }},
		{"BatchPut", func(k string) error { return e.BatchPut(ctx, map[string]string{k: "x", "unrelated": "x"}) }},
		{"BatchDelete", func(k string) error { return e.BatchDelete(ctx, []string{"unrelated", k}) }},
		{"Write", func(k string) error { return e.Write(ctx, []BatchOp{{Kind: OpPut, Key: k, Value: "x"}}) }},
		{"Txn", func(k string) error {
			tx, err := e.BeginTransaction(ctx)
			if err != nil {
				return err
			}
			if err := tx.Put(k, "x"); err != nil {
				return err
			}
			return tx.Commit()
		}},
	}
	for _, w := range writers {
		for _, present := range []bool{true, false} {
			r := fmt.Sprintf("r-%s-%v", w.name, present)
			out := fmt.Sprintf("w-%s-%v", w.name, present)
			if present {
				mustPut(t, e, r, "0")
			} else if w.name == "Delete" || w.name == "BatchDelete" {
				continue // deleting a missing key changes nothing: engines may skip it
			}
			tx := begin(t, e)
			if present {
				txnWant(t, tx, r, "0")
			} else {
				txnWantMissing(t, tx, r)
			}
			noErr(t, "txn Put", tx.Put(out, "1"))
			noErr(t, w.name, w.write(r))
			wantErr(t, fmt.Sprintf("Commit after a %s of a key read (present %v)", w.name, present), tx.Commit(), ErrConflict)
			wantMissing(t, e, out)
		}
	}
}

func testTxnNoFalseConflict(t *testing.T, e StorageEngine) {
	mustPut(t, e, "a", "0")
	mustPut(t, e, "d", "1")
	tx := begin(t, e)
	txnWant(t, tx, "a", "0")
	txnWant(t, tx, "d", "1")
	mustPut(t, e, "b", "x") // neither read nor written by tx
	noErr(t, "txn Put", tx.Put("d", "2"))
	noErr(t, "txn Put", tx.Put("c", "1"))
	noErr(t, "Commit", tx.Commit())
	wantValue(t, e, "d", "2")
	wantValue(t, e, "c", "1")

	// Two transactions over disjoint keys both commit.
	tx1 := begin(t, e)
	tx2 := begin(t, e)
	txnWant(t, tx1, "a", "0")
	noErr(t, "tx1 Put", tx1.Put("x1", "1"))
	txnWant(t, tx2, "b", "x")
	noErr(t, "tx2 Put", tx2.Put("x2", "2"))
	noErr(t, "tx2 Commit", tx2.Commit())
	noErr(t, "tx1 Commit", tx1.Commit())
	wantValue(t, e, "x1", "1")
	wantValue(t, e, "x2", "2")
}

func testTxnReadOnlyCommit(t *testing.T, e StorageEngine) {
	mustPut(t, e, "a", "0")
	tx := begin(t, e)
	txnWant(t, tx, "a", "0")
	txnWantMissing(t, tx, "b")
	mustPut(t, e, "a", "1")
	mustPut(t, e, "b", "1")
	noErr(t, "read-only Commit", tx.Commit())
	empty := begin(t, e)
	noErr(t, "empty Commit", empty.Commit())
}

func testTxnRollback(t *testing.T, e StorageEngine) {
	mustPut(t, e, "b", "0")
	tx := begin(t, e)
	noErr(t, "txn Put", tx.Put("a", "1"))
	noErr(t, "txn Delete", tx.Delete("b"))
	noErr(t, "Rollback", tx.Rollback())
	wantMissing(t, e, "a")
	wantValue(t, e, "b", "0")
	noErr(t, "second Rollback", tx.Rollback())
	wantTxnDone(t, tx)
	wantErr(t, "Commit after Rollback", tx.Commit(), ErrTxnDone)
}

func wantTxnDone(t *testing.T, tx Transaction) {
	t.Helper()
	wantErr(t, "txn Put", tx.Put("z", "1"), ErrTxnDone)
	_, err := tx.Get("z")
	wantErr(t, "txn Get", err, ErrTxnDone)
	wantErr(t, "txn Delete", tx.Delete("z"), ErrTxnDone)
}

func testTxnDone(t *testing.T, e StorageEngine) {
	tx := begin(t, e)
	noErr(t, "txn Put", tx.Put("a", "1"))
	noErr(t, "Commit", tx.Commit())
	noErr(t, "Rollback after Commit", tx.Rollback())
	wantErr(t, "second Commit", tx.Commit(), ErrTxnDone)
	wantTxnDone(t, tx)
	wantValue(t, e, "a", "1")

	// A commit that failed with a conflict is done too.
	tx = begin(t, e)
	noErr(t, "txn Put", tx.Put("a", "2"))
	mustPut(t, e, "a", "3")
	wantErr(t, "Commit", tx.Commit(), ErrConflict)
	wantErr(t, "Commit after a conflict", tx.Commit(), ErrTxnDone)
	wantTxnDone(t, tx)
	noErr(t, "Rollback after a conflict", tx.Rollback())
	wantValue(t, e, "a", "3")
}

// checkClosedEngine checks that every method of e (closed, or never
// initialised) returns ErrClosed. It does not call Init or Close.
func checkClosedEngine(t *testing.T, e StorageEngine) {
	t.Helper()
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed engine: got %v, want ErrClosed", what, err)
		}
	}
	check("Put", e.Put(ctx, "k", "v"))
	_, err := e.Get(ctx, "k")
	check("Get", err)
	check("Delete", e.Delete(ctx, "k"))
	check("BatchPut", e.BatchPut(ctx, map[string]string{"k": "v"}))
	check("empty BatchPut", e.BatchPut(ctx, nil))
	_, err = e.BatchGet(ctx, []string{"k"})
	check("BatchGet", err)
	_, err = e.BatchGet(ctx, nil)
	check("empty BatchGet", err)
	check("BatchDelete", e.BatchDelete(ctx, []string{"k"}))
	check("empty BatchDelete", e.BatchDelete(ctx, nil))
	it, err := e.NewIterator(ctx, "")
	check("NewIterator", err)
	if it != nil {
		_ = it.Close()
	}
	it, err = e.NewRangeIterator(ctx, "a", "z")
	check("NewRangeIterator", err)
	if it != nil {
		_ = it.Close()
	}
	tx, err := e.BeginTransaction(ctx)
	check("BeginTransaction", err)
	if tx != nil {
		_ = tx.Rollback()
	}
	check("HealthCheck", e.HealthCheck(ctx))
	check("PutWithTTL", e.PutWithTTL(ctx, "k", "v", time.Hour))
	check("Write", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "k", Value: "v"}}))
	check("empty Write", e.Write(ctx, nil))
	check("Sync", e.Sync(ctx))
	_, err = e.Stats(ctx)
	check("Stats", err)
	if e.Name() == "" {
		t.Error("Name is empty on a closed engine")
	}
}

func testClosed(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	m := make(map[string]string)
	for i := range 300 {
		m[fmt.Sprintf("k%03d", i)] = "v"
	}
	noErr(t, "BatchPut", e.BatchPut(ctx, m))
	it, err := e.NewIterator(ctx, "")
	noErr(t, "NewIterator", err)
	if !it.Next() {
		t.Fatal("Next = false")
	}
	tx := begin(t, e)
	noErr(t, "txn Put", tx.Put("x", "1"))
	tx2 := begin(t, e)

	noErr(t, "Close", e.Close())
	checkClosedEngine(t, e)
	noErr(t, "second Close", e.Close())
	wantErr(t, "Init after Close", e.Init(t.TempDir()), ErrClosed)

	// An iterator open at Close ends (perhaps after entries it had already
	// fetched) with ErrClosed or without error; it never panics.
	for n := 0; it.Next(); n++ {
		if n > len(m) {
			t.Fatal("iterator does not end after Close")
		}
	}
	if err := it.Error(); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("iterator Error after Close = %v, want nil or ErrClosed", err)
	}
	noErr(t, "iterator Close", it.Close())

	wantErr(t, "txn Put", tx.Put("y", "1"), ErrClosed)
	_, err = tx.Get("x")
	wantErr(t, "txn Get", err, ErrClosed)
	wantErr(t, "txn Delete", tx.Delete("x"), ErrClosed)
	wantErr(t, "txn Commit", tx.Commit(), ErrClosed)
	noErr(t, "txn Rollback after Commit", tx.Rollback())
	noErr(t, "txn Rollback", tx2.Rollback())
}

func testInitTwice(t *testing.T, e StorageEngine) {
	if err := e.Init(t.TempDir()); err == nil {
		t.Fatal("second Init succeeded")
	}
	mustPut(t, e, "k", "v")
	wantValue(t, e, "k", "v")
}

func testHealthAndSync(t *testing.T, e StorageEngine) {
	noErr(t, "HealthCheck", e.HealthCheck(t.Context()))
	mustPut(t, e, "k", "v")
	noErr(t, "Sync", e.Sync(t.Context()))
	wantValue(t, e, "k", "v")
	if e.Name() == "" {
		t.Fatal("Name is empty")
	}
}

func testStats(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	s0, err := e.Stats(ctx)
	noErr(t, "Stats", err)
	if s0.Engine != e.Name() || s0.Keys != 0 {
		t.Fatalf("Stats of a new engine: engine %q keys %d", s0.Engine, s0.Keys)
	}
	for i := range 10 {
		mustPut(t, e, fmt.Sprintf("k%d", i), "v")
	}
	mustDelete(t, e, "k0")
	mustDelete(t, e, "k1")
	mustDelete(t, e, "k2")
	mustPut(t, e, "k3", "again")
	noErr(t, "BatchPut", e.BatchPut(ctx, map[string]string{"k10": "v", "k11": "v"}))
	noErr(t, "Write", e.Write(ctx, []BatchOp{{Kind: OpPut, Key: "k12", Value: "v"}, {Kind: OpDelete, Key: "k4"}}))
	tx := begin(t, e)
	noErr(t, "txn Put", tx.Put("k13", "v"))
	noErr(t, "Commit", tx.Commit())
	for _, k := range []string{"k3", "k5", "k6", "k0", "nope"} {
		_, _ = e.Get(ctx, k)
	}
	_, err = e.BatchGet(ctx, []string{"k7", "k8", "nope"})
	noErr(t, "BatchGet", err)

	s, err := e.Stats(ctx)
	noErr(t, "Stats", err)
	if s.Keys != 10 {
		t.Errorf("Keys = %d, want 10", s.Keys)
	}
	if d := s.Writes - s0.Writes; d != 15 {
		t.Errorf("Writes grew by %d, want 15", d)
	}
	if d := s.Deletes - s0.Deletes; d != 4 {
		t.Errorf("Deletes grew by %d, want 4", d)
	}
	if d := s.Reads - s0.Reads; d != 8 {
		t.Errorf("Reads grew by %d, want 8", d)
	}
	if s.CacheHitRate < 0 || s.CacheHitRate > 1 {
		t.Errorf("CacheHitRate = %v, want 0..1", s.CacheHitRate)
	}
}

// testConcurrent runs writers that rewrite whole groups of keys atomically,
// readers that check they never see half a group, and transactions that
// increment one counter (lost updates would show as a wrong total).
func testConcurrent(t *testing.T, e StorageEngine) {
	ctx := t.Context()
	const groups, perGroup, writers, rounds, readers = 8, 8, 4, 100, 4
	const incrementers, increments = 4, 25
	groupKey := func(g, i int) string { return fmt.Sprintf("c/%d/%d", g, i) }
	initial := make(map[string]string)
	for g := range groups {
		for i := range perGroup {
			initial[groupKey(g, i)] = "init"
		}
	}
	noErr(t, "BatchPut", e.BatchPut(ctx, initial))
	mustPut(t, e, "counter", "0")

	var writersDone atomic.Bool
	var wg, writerWG sync.WaitGroup
	for w := range writers {
		writerWG.Add(1)
		go func() {
			defer writerWG.Done()
			for r := range rounds {
				g := (w + r) % groups
				val := fmt.Sprintf("w%d-r%d", w, r)
				var err error
				if r%2 == 0 {
					m := make(map[string]string, perGroup)
					for i := range perGroup {
						m[groupKey(g, i)] = val
					}
					err = e.BatchPut(ctx, m)
				} else {
					// A delete and a re-put of the same key in one batch must
					// never show the key missing.
					ops := []BatchOp{{Kind: OpDelete, Key: groupKey(g, 0)}}
					for i := range perGroup {
						ops = append(ops, BatchOp{Kind: OpPut, Key: groupKey(g, i), Value: val})
					}
					err = e.Write(ctx, ops)
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	go func() {
		writerWG.Wait()
		writersDone.Store(true)
	}()
	checkGroups := func(who string, got []pair) bool {
		vals := make(map[int][]string)
		for _, p := range got {
			var g, i int
			if _, err := fmt.Sscanf(p.k, "c/%d/%d", &g, &i); err != nil {
				t.Errorf("%s: unexpected key %q", who, p.k)
				return false
			}
			vals[g] = append(vals[g], p.v)
		}
		for g := range groups {
			v := vals[g]
			if len(v) != perGroup || slices.ContainsFunc(v, func(s string) bool { return s != v[0] }) {
				t.Errorf("%s saw a torn batch in group %d: %q", who, g, v)
				return false
			}
		}
		return true
	}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n == 0 || !writersDone.Load(); n++ {
				var it Iterator
				var err error
				if r%2 == 0 {
					it, err = e.NewIterator(ctx, "c/")
				} else {
					it, err = e.NewRangeIterator(ctx, "c/", "c0")
				}
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				var got []pair
				for it.Next() {
					got = append(got, pair{strings.Clone(it.Key()), strings.Clone(it.Value())})
				}
				if err := it.Error(); err != nil {
					t.Errorf("reader %d: iterator: %v", r, err)
				}
				_ = it.Close()
				if !checkGroups(fmt.Sprintf("reader %d iterator", r), got) {
					return
				}
				g := n % groups
				keys := make([]string, perGroup)
				for i := range keys {
					keys[i] = groupKey(g, i)
				}
				m, err := e.BatchGet(ctx, keys)
				if err != nil {
					t.Errorf("reader %d: BatchGet: %v", r, err)
					return
				}
				first := m[keys[0]]
				for _, k := range keys {
					if v, ok := m[k]; !ok || v != first {
						t.Errorf("reader %d: BatchGet saw a torn batch in group %d: %q", r, g, m)
						return
					}
				}
			}
		}()
	}
	var commits atomic.Int64
	for w := range incrementers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range increments {
				for attempt := 0; ; attempt++ {
					if attempt > 10000 {
						t.Errorf("incrementer %d: no commit after %d attempts", w, attempt)
						return
					}
					err := increment(ctx, e)
					if errors.Is(err, ErrConflict) {
						continue
					}
					if err != nil {
						t.Errorf("incrementer %d: %v", w, err)
						return
					}
					commits.Add(1)
					break
				}
			}
		}()
	}
	wg.Wait()
	writerWG.Wait()
	wantValue(t, e, "counter", fmt.Sprint(commits.Load()))
	if commits.Load() != incrementers*increments {
		t.Fatalf("%d increments committed, want %d", commits.Load(), incrementers*increments)
	}
}

// increment adds one to "counter" in a transaction.
func increment(ctx context.Context, e StorageEngine) error {
	tx, err := e.BeginTransaction(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	v, err := tx.Get("counter")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("counter %q: %w", v, err)
	}
	if err := tx.Put("counter", strconv.Itoa(n+1)); err != nil {
		return err
	}
	return tx.Commit()
}
