//go:build rust

package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// BenchmarkCrossing measures the price of the Go->Rust boundary in one run:
//   - get/go-to-rust: one cgo call per Get, as the engine serves Go callers;
//   - get/inside-rust: the same lookups of the same keys, made in a loop
//     inside the library (mantis_diag_get_loop), so no crossing per key;
//   - get4k/one-vs-two-calls: Get of a 4 KiB value (over the stack
//     buffer) in one call, and as the size probe plus second call that
//     every such Get made before the engine kept a size estimate,
//     alternated in blocks of 100; two/one is the speed-up;
//   - put/single: 100 Puts, one call each; put/batch100: one BatchPut of
//     the same 100 pairs (SyncNever). Both report ns per pair.
//
// The ratios get/go-to-rust : get/inside-rust and put/batch100 : put/single
// are the figures recorded in docs/performance/go-rust-boundary.md.
func BenchmarkCrossing(b *testing.B) {
	const n = 10_000
	open := func(b *testing.B) *RustEngine { return openBenchRustEngine(b, SyncNever) }
	keys := benchKeyList(n)
	r := rand.New(rand.NewPCG(5, 6))
	order := make([]string, 1000)
	for i := range order {
		order[i] = keys[r.IntN(n)]
	}

	b.Run("get/go-to-rust", func(b *testing.B) {
		e := open(b)
		preload(b, e, n, benchKey)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := e.Get(b.Context(), order[i%len(order)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("get/inside-rust", func(b *testing.B) {
		e := open(b)
		preload(b, e, n, benchKey)
		rounds := uint64(b.N/len(order) + 1)
		b.ResetTimer()
		found, err := e.diagGetLoop(order, rounds)
		b.StopTimer()
		if err != nil || found != rounds*uint64(len(order)) {
			b.Fatalf("found %d of %d: %v", found, rounds*uint64(len(order)), err)
		}
		// Report per lookup: the loop ran rounds*len(order) of them.
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*uint64(len(order))), "ns/get")
	})
	// A 4 KiB value, larger than Get's stack buffer: in one call into a
	// buffer sized from the engine's estimate, and with the estimate off,
	// as a probe that answers the size and a second call that copies.
	// Blocks of 100 Gets alternate between the two engines, so a burst of
	// load from the machine's other work falls on both alike.
	b.Run("get4k/one-vs-two-calls", func(b *testing.B) {
		one, two := open(b), open(b)
		two.twoCallGets = true
		big := strings.Repeat("v", 4096)
		m := make(map[string]string, len(order))
		for _, k := range order {
			m[k] = big
		}
		for _, e := range []*RustEngine{one, two} {
			if err := e.BatchPut(b.Context(), m); err != nil {
				b.Fatal(err)
			}
		}
		var spent [2]time.Duration
		get := func(e *RustEngine, slot int) {
			start := time.Now()
			for i := range 100 {
				if v, err := e.Get(b.Context(), order[i]); err != nil || len(v) != len(big) {
					b.Fatalf("Get: %d bytes, %v", len(v), err)
				}
			}
			spent[slot] += time.Since(start)
		}
		b.ReportAllocs()
		for b.Loop() {
			get(one, 0)
			get(two, 1)
		}
		gets := float64(b.N * 100)
		b.ReportMetric(float64(spent[0].Nanoseconds())/gets, "ns/get-one-call")
		b.ReportMetric(float64(spent[1].Nanoseconds())/gets, "ns/get-two-calls")
		b.ReportMetric(float64(spent[1])/float64(spent[0]), "two/one")
	})
	b.Run("put/single", func(b *testing.B) {
		e := open(b)
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range order[:100] {
				if err := e.Put(b.Context(), k, benchValue); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/pair")
	})
	b.Run("put/batch100", func(b *testing.B) {
		e := open(b)
		m := make(map[string]string, 100)
		for _, k := range order[:100] {
			m[k] = benchValue
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := e.BatchPut(b.Context(), m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/pair")
	})
}

// BenchmarkWriteEncoding compares the two ways Write can hand a batch of
// 100 puts of 1 KiB (SyncNever) to the library, in one run: fresh encodes
// each batch into a new buffer (encodeOps, as Write did before buffers were
// recycled); pooled is Write, which encodes into a buffer from batchBufs.
// Both write the same keys and values; ns/op and B/op are per batch.
func BenchmarkWriteEncoding(b *testing.B) {
	e := NewRustEngine(Config{Sync: SyncNever})
	if err := e.Init(b.TempDir()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	value := strings.Repeat("v", 1024)
	ops := make([]BatchOp, 100)
	for i := range ops {
		ops[i] = BatchOp{Kind: OpPut, Key: fmt.Sprintf("key%05d", i), Value: value}
	}
	ctx := context.Background()
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := e.writeBatch(context.Background(), encodeOps(ops), len(ops)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := e.Write(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// openBenchRustEngine opens a Rust engine with the default settings and
// the given sync policy in a directory of b's own, closed when b ends.
func openBenchRustEngine(b *testing.B, sync SyncPolicy) *RustEngine {
	cfg := DefaultConfig()
	cfg.Sync = sync
	e := NewRustEngine(cfg)
	if err := e.Init(b.TempDir()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}
