package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// benchEngine is an engine BenchmarkEngines measures. open returns an
// initialised, empty engine and registers its Close with b.Cleanup.
type benchEngine struct {
	name string
	open func(b *testing.B) StorageEngine
}

// benchEngines lists the engines BenchmarkEngines runs, side by side under
// each sub-benchmark (BenchmarkEngines/Put/memory, BenchmarkEngines/Put/rust,
// ...) so the ratio comes from one run. A file built with -tags rust adds
// the Rust engine:
//
//	func init() {
//		benchEngines = append(benchEngines, benchEngine{name: "rust", open: openRustBenchEngine})
//	}
var benchEngines = []benchEngine{{name: "memory", open: openMemoryBenchEngine}}

func openMemoryBenchEngine(b *testing.B) StorageEngine {
	e := NewMemoryEngine(DefaultConfig())
	if err := e.Init(b.TempDir()); err != nil {
		b.Fatalf("Init: %v", err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}

// engineBenchmarks are the sub-benchmarks every engine runs.
var engineBenchmarks = []struct {
	name string
	run  func(b *testing.B, e StorageEngine)
}{
	{"Put", benchPut},
	{"SequentialPut", benchSequentialPut},
	{"RandomPut", benchRandomPut},
	{"Get", benchGet},
	{"BatchPut100", benchBatchPut100},
	{"PrefixScan1000", benchPrefixScan(1000)},
	{"PrefixScanFirst100", benchPrefixScan(100)},
	{"Mixed90-10Parallel", benchMixedParallel},
	{"Mixed90-10/g1", benchMixed(1)},
	{"Mixed90-10/g8", benchMixed(8)},
	{"Mixed90-10/g64", benchMixed(64)},
}

func BenchmarkEngines(b *testing.B) {
	for _, bm := range engineBenchmarks {
		b.Run(bm.name, func(b *testing.B) {
			for _, eng := range benchEngines {
				b.Run(eng.name, func(b *testing.B) {
					runEngineBenchmark(b, eng.open, bm.run)
				})
			}
		})
	}
}

// runEngineBenchmark runs one sub-benchmark on a fresh engine.
func runEngineBenchmark(b *testing.B, open func(b *testing.B) StorageEngine, run func(b *testing.B, e StorageEngine)) {
	e := open(b)
	b.ReportAllocs()
	run(b, e)
}

const (
	benchKeys      = 100_000 // key space of the point operations
	benchValueSize = 100
)

var benchValue = strings.Repeat("v", benchValueSize)

func benchKey(i int) string { return fmt.Sprintf("key/%08d", i) }

// benchKeyList returns benchKey(0) .. benchKey(n-1).
func benchKeyList(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	return keys
}

// preload writes n keys in batches of 1000.
func preload(b *testing.B, e StorageEngine, n int, key func(int) string) {
	b.Helper()
	for start := 0; start < n; start += 1000 {
		m := make(map[string]string, 1000)
		for i := start; i < min(start+1000, n); i++ {
			m[key(i)] = benchValue
		}
		if err := e.BatchPut(b.Context(), m); err != nil {
			b.Fatalf("preload: %v", err)
		}
	}
}

func benchPut(b *testing.B, e StorageEngine) {
	ctx := b.Context()
	keys := benchKeyList(benchKeys)
	b.SetBytes(benchValueSize)
	i := 0
	for b.Loop() {
		if err := e.Put(ctx, keys[i%benchKeys], benchValue); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchGet(b *testing.B, e StorageEngine) {
	ctx := b.Context()
	const n = 10_000
	preload(b, e, n, benchKey)
	keys := benchKeyList(n)
	r := rand.New(rand.NewPCG(1, 2))
	b.SetBytes(benchValueSize)
	for b.Loop() {
		if _, err := e.Get(ctx, keys[r.IntN(n)]); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBatchPut100(b *testing.B, e StorageEngine) {
	ctx := b.Context()
	const batches = 64
	maps := make([]map[string]string, batches)
	for j := range maps {
		maps[j] = make(map[string]string, 100)
		for i := range 100 {
			maps[j][benchKey(j*100+i)] = benchValue
		}
	}
	b.SetBytes(100 * benchValueSize)
	i := 0
	for b.Loop() {
		if err := e.BatchPut(ctx, maps[i%batches]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchPrefixScan scans the 1000 keys under "scan/" (among 10,000 others)
// and stops after limit of them: a whole prefix (1000), or a page, as the
// HTTP scan route and benchmark mode read (100).
func benchPrefixScan(limit int) func(b *testing.B, e StorageEngine) {
	return func(b *testing.B, e StorageEngine) {
		ctx := b.Context()
		preload(b, e, 10_000, benchKey)
		preload(b, e, 1000, func(i int) string { return fmt.Sprintf("scan/%06d", i) })
		b.SetBytes(int64(limit) * benchValueSize)
		for b.Loop() {
			it, err := e.NewIterator(ctx, "scan/")
			if err != nil {
				b.Fatal(err)
			}
			n, size := 0, 0
			for n < limit && it.Next() {
				n++
				size += len(it.Key()) + len(it.Value())
			}
			if err := it.Error(); err != nil {
				b.Fatal(err)
			}
			_ = it.Close()
			if n != limit || size != limit*(len("scan/000000")+benchValueSize) {
				b.Fatalf("scan saw %d keys and %d bytes, want %d keys", n, size, limit)
			}
		}
	}
}

// benchMixedParallel is 90% Get and 10% Put from GOMAXPROCS goroutines.
func benchMixedParallel(b *testing.B, e StorageEngine) {
	ctx := b.Context()
	const n = 10_000
	preload(b, e, n, benchKey)
	keys := benchKeyList(n)
	var seed atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 7))
		for pb.Next() {
			if err := mixedOp(ctx, e, keys, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchSequentialPut writes fresh keys in increasing order.
func benchSequentialPut(b *testing.B, e StorageEngine) {
	ctx := b.Context()
	b.SetBytes(benchValueSize)
	i := 0
	for b.Loop() {
		if err := e.Put(ctx, fmt.Sprintf("seq/%012d", i), benchValue); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchRandomPut overwrites random keys of a preloaded set.
func benchRandomPut(b *testing.B, e StorageEngine) {
	ctx := b.Context()
	preload(b, e, benchKeys, benchKey)
	keys := benchKeyList(benchKeys)
	r := rand.New(rand.NewPCG(3, 4))
	b.SetBytes(benchValueSize)
	for b.Loop() {
		if err := e.Put(ctx, keys[r.IntN(benchKeys)], benchValue); err != nil {
			b.Fatal(err)
		}
	}
}

// benchMixed runs 90% gets and 10% puts from exactly `goroutines` goroutines
// sharing b.N operations.
func benchMixed(goroutines int) func(b *testing.B, e StorageEngine) {
	return func(b *testing.B, e StorageEngine) {
		ctx := b.Context()
		const n = 10_000
		preload(b, e, n, benchKey)
		keys := benchKeyList(n)
		var next atomic.Int64
		b.ResetTimer()
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), 9))
				for next.Add(1) <= int64(b.N) {
					if err := mixedOp(ctx, e, keys, r); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}

// mixedOp is one step of the 90/10 mix: a put of a random key one time in
// ten, a get otherwise.
func mixedOp(ctx context.Context, e StorageEngine, keys []string, r *rand.Rand) error {
	k := keys[r.IntN(len(keys))]
	if r.IntN(10) == 0 {
		return e.Put(ctx, k, benchValue)
	}
	_, err := e.Get(ctx, k)
	return err
}
