//go:build rust

package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// newTestRustEngine opens a Rust engine in a fresh directory; it is closed
// before the directory is removed.
func newTestRustEngine(t *testing.T) StorageEngine {
	dir := t.TempDir()
	e := NewRustEngine(conformanceConfig(dir))
	if err := e.Init(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestRustConformance(t *testing.T) {
	runConformance(t, newTestRustEngine)
}

func TestRustClosedBeforeInit(t *testing.T) {
	checkClosedEngine(t, NewRustEngine(conformanceConfig(t.TempDir())))
}

// TestRustDifferentialSeeded drives the Rust and memory engines with the
// same random operations and compares every answer.
func TestRustDifferentialSeeded(t *testing.T) {
	for i, ops := range seededDifferentialOps(200) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			runDifferential(t, newTestRustEngine(t), newTestMemoryEngine(t), ops)
		})
	}
}

// FuzzRustDifferential: go test -tags rust -fuzz FuzzRustDifferential ./storage/
func FuzzRustDifferential(f *testing.F) {
	addDifferentialSeeds(f)
	f.Fuzz(func(t *testing.T, ops []byte) {
		runDifferential(t, newTestRustEngine(t), newTestMemoryEngine(t), ops)
	})
}

// TestRustDurableAcrossReopen checks what only the durable engine promises:
// data, batches and deletes survive Close and a new Init on the same directory.
func TestRustDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := NewRustEngine(conformanceConfig(dir))
	if err := e.Init(dir); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 100_000)
	if err := e.BatchPut(ctx, map[string]string{"a": "1", "big": big, "gone": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Init(dir); !errors.Is(err, ErrClosed) {
		t.Fatalf("Init after Close: %v", err)
	}
	e2 := NewRustEngine(conformanceConfig(dir))
	if err := e2.Init(dir); err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	for k, want := range map[string]string{"a": "1", "big": big} {
		if got, err := e2.Get(ctx, k); err != nil || got != want {
			t.Fatalf("%s after reopen: %d bytes, %v", k, len(got), err)
		}
	}
	if _, err := e2.Get(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key after reopen: %v", err)
	}
}

// TestRustSecondOpenFails: the directory lock reaches Go as a clear error.
func TestRustSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	e := NewRustEngine(conformanceConfig(dir))
	if err := e.Init(dir); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	err := NewRustEngine(conformanceConfig(dir)).Init(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func openRustBenchEngine(b *testing.B) StorageEngine {
	dir := b.TempDir()
	cfg := DefaultConfig()
	cfg.Sync = SyncNever
	e := NewRustEngine(cfg)
	if err := e.Init(dir); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}

func init() {
	benchEngines = append(benchEngines, benchEngine{name: "rust", open: openRustBenchEngine})
}

// TestRustCompactAndCheckpoint: the operations beyond the interface work
// from Go, and a checkpoint opens as a database holding the data.
func TestRustCompactAndCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := NewRustEngine(conformanceConfig(dir))
	if err := e.Init(dir); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 100 {
		if err := e.Put(ctx, fmt.Sprintf("k%03d", i), strings.Repeat("v", 200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Delete(ctx, "k000"); err != nil {
		t.Fatal(err)
	}
	if err := e.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	cp := t.TempDir() + "/copy"
	if err := e.Checkpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if err := e.Checkpoint(ctx, cp); err == nil {
		t.Fatal("a checkpoint into a non-empty directory succeeded")
	}
	c := NewRustEngine(conformanceConfig(cp))
	if err := c.Init(cp); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Stats(ctx)
	if err != nil || st.Keys != 99 {
		t.Fatalf("checkpoint holds %d keys (%v), want 99", st.Keys, err)
	}
	if _, err := c.Get(ctx, "k000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key in the checkpoint: %v", err)
	}
}

// TestRustGetAnySize checks Get against a map while the values it meets
// move its buffer estimate up and down: small values (stack buffer), large
// ones (first a size probe, then one call into an estimated buffer), values
// just over and under the estimate, mixed sizes, and overwrites that change
// a key's size between calls.
func TestRustGetAnySize(t *testing.T) {
	e := newTestRustEngine(t).(*RustEngine)
	ctx := context.Background()
	model := map[string]string{}
	put := func(k string, size int) {
		v := strings.Repeat(string(rune('a'+size%26)), size)
		if err := e.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		model[k] = v
	}
	check := func(stage string) {
		t.Helper()
		for k, want := range model {
			got, err := e.Get(ctx, k)
			if err != nil || got != want {
				t.Fatalf("%s: Get(%q) = %d bytes, %v; want %d bytes", stage, k, len(got), err, len(want))
			}
		}
	}
	sizes := []int{0, 1, 100, getStackBuf, getStackBuf + 1, 4096, 5000, 5121, 70_000, 3 * maxGetHint}
	for i, size := range sizes {
		put(fmt.Sprintf("k%02d", i), size)
	}
	check("mixed sizes")
	if h := e.getHint.Load(); h <= getStackBuf || h > maxGetHint {
		t.Fatalf("after large values the Get buffer is %d bytes", h)
	}
	// Sizes around the estimate, and a key overwritten larger each round.
	for round := range 20 {
		hint := int(e.getHint.Load())
		put("edge-under", hint)
		put("edge-over", hint+1)
		put("growing", 1000*(round+1))
		check(fmt.Sprintf("round %d (buffer %d)", round, hint))
	}
	// Only small values for a while: the estimate decays to the stack buffer.
	clear(model)
	put("small", 10)
	for range 2000 {
		check("small values")
	}
	if h := e.getHint.Load(); h > getStackBuf {
		t.Fatalf("the Get buffer stayed at %d bytes after only small values", h)
	}
	if _, err := e.Get(ctx, "absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want ErrNotFound", err)
	}
}

// TestRustWriteReusesBatchBuffer checks that Write encodes into a recycled
// buffer: a batch of 100 values of 1 KiB allocates far less than its
// 100 KiB encoding per call, and batches encoded one after another into
// the same buffer (longer, then shorter, then one over the pooled size)
// each store exactly their own pairs.
func TestRustWriteReusesBatchBuffer(t *testing.T) {
	e := newTestRustEngine(t)
	ctx := context.Background()
	batch := func(n, size int, fill byte) []BatchOp {
		ops := make([]BatchOp, n)
		for i := range ops {
			ops[i] = BatchOp{Kind: OpPut, Key: fmt.Sprintf("k%04d", i), Value: strings.Repeat(string(rune('a'+int(fill)%26)), size+i%7)}
		}
		return ops
	}
	check := func(ops []BatchOp) {
		t.Helper()
		for _, op := range ops {
			v, err := e.Get(ctx, op.Key)
			if err != nil || v != op.Value {
				t.Fatalf("Get %s = %d bytes %.8q, %v; want %d bytes %.8q", op.Key, len(v), v, err, len(op.Value), op.Value)
			}
		}
	}
	for i, ops := range [][]BatchOp{batch(100, 1024, 0), batch(40, 100, 1), batch(3, maxPooledBatch/2, 2), batch(100, 1024, 3)} {
		if err := e.Write(ctx, ops); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		check(ops)
	}

	ops := batch(100, 1024, 4)
	encoded := len(encodeOps(ops))
	const writes = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range writes {
		if err := e.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// Under -race sync.Pool drops items at random on purpose: no count then.
	if per := (after.TotalAlloc - before.TotalAlloc) / writes; per > uint64(encoded)/8 && !raceEnabled {
		t.Errorf("Write allocated %d bytes per call for a batch encoded in %d: the encoding buffer is not reused", per, encoded)
	}
	check(ops)
}

// TestRustMapReadsFollowTheConfig checks that Config.NoMapReads reaches the
// core: with maps on, reading a value of a closed segment maps that
// segment's file (it shows in /proc/self/maps); with NoMapReads, no file
// of the data directory is ever mapped.
func TestRustMapReadsFollowTheConfig(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/maps")
	}
	for _, noMap := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoMapReads=%v", noMap), func(t *testing.T) {
			dir := t.TempDir()
			cfg := conformanceConfig(dir)
			cfg.SegmentSize = 4096
			cfg.CacheSize = 0 // every get reads its segment
			cfg.Sync = SyncNever
			cfg.NoMapReads = noMap
			e := NewRustEngine(cfg)
			if err := e.Init(dir); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = e.Close() }()
			ctx := context.Background()
			value := strings.Repeat("v", 1024) // above the inline threshold: kept on disk
			for i := range 40 {
				if err := e.Put(ctx, fmt.Sprintf("key-%02d", i), value); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 40 {
				got, err := e.Get(ctx, fmt.Sprintf("key-%02d", i))
				if err != nil || got != value {
					t.Fatalf("get key-%02d: %d bytes, %v", i, len(got), err)
				}
			}
			maps, err := os.ReadFile("/proc/self/maps")
			if err != nil {
				t.Fatal(err)
			}
			mapped := strings.Count(string(maps), dir)
			if noMap && mapped != 0 {
				t.Fatalf("NoMapReads: %d maps of files in %s", mapped, dir)
			}
			if !noMap && mapped == 0 {
				t.Fatalf("maps on: no file of %s is mapped after reading closed segments", dir)
			}
		})
	}
}
