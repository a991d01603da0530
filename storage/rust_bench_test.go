//go:build rust

package storage

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkCrossing measures the price of the Go->Rust boundary in one run:
//   - get/go-to-rust: one cgo call per Get, as the engine serves Go callers;
//   - get/inside-rust: the same lookups of the same keys, made in a loop
//     inside the library (mantis_diag_get_loop), so no crossing per key;
//   - put/single: 100 Puts, one call each; put/batch100: one BatchPut of
//     the same 100 pairs (SyncNever). Both report ns per pair.
//
// The ratios get/go-to-rust : get/inside-rust and put/batch100 : put/single
// are the figures recorded in docs/performance/go-rust-boundary.md.
func BenchmarkCrossing(b *testing.B) {
	const n = 10_000
	open := func(b *testing.B) *RustEngine {
		cfg := DefaultConfig()
		cfg.Sync = SyncNever
		e := NewRustEngine(cfg)
		if err := e.Init(b.TempDir()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e.Close() })
		return e
	}
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
