package telemetry

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkObserveSince prices recording one operation, from every CPU at
// once into one family (the worst case: one lock), beside what any caller
// timing its operations pays anyway: one clock read and a counter.
func BenchmarkObserveSince(b *testing.B) {
	start := time.Now()
	b.Run("observe-since", func(b *testing.B) {
		p := New().Protocol("bench")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.ObserveSince(Read, start)
			}
		})
	})
	b.Run("clock-and-counter", func(b *testing.B) {
		var n, total atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Add(1)
				total.Add(int64(time.Since(start)))
			}
		})
	})
}
