//go:build rust

package storage

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/cputime"
)

// BenchmarkGroupCommitScaling measures what group commit gives the Go
// engine at the `always` sync policy: puts of 100-byte values from 1
// goroutine and from 64, each for groupCommitRunFor, alternated over b.N
// rounds on one database; it reports the median commits/s of each, their
// ratio (the 64-goroutine rate over the 1-goroutine rate) and the
// process's CPU time per commit of each. One goroutine waits for every
// fdatasync alone, so its rate is the disk's sync rate; 64 share syncs,
// and the ratio says how many commits a sync carries once the CPU each
// commit costs is counted. Run it with a fixed round count:
//
//	go test -tags rust ./storage/ -run '^$' -bench GroupCommitScaling -benchtime=5x
func BenchmarkGroupCommitScaling(b *testing.B) {
	e := openBenchRustEngine(b, SyncAlways)
	value := string(make([]byte, 100))
	var one, many, oneCPU, manyCPU []float64
	for round := range b.N {
		for _, writers := range []int{1, 64} {
			rate, cpu, perSync := groupCommitRound(b, e, writers, round, value)
			b.Logf("round %d: %2d goroutines: %.0f commits/s, %.1f commits per sync, %.1f us CPU per commit",
				round, writers, rate, perSync, cpu)
			if writers == 1 {
				one, oneCPU = append(one, rate), append(oneCPU, cpu)
			} else {
				many, manyCPU = append(many, rate), append(manyCPU, cpu)
			}
		}
	}
	b.ReportMetric(medianOf(one), "1w-commits/s")
	b.ReportMetric(medianOf(many), "64w-commits/s")
	b.ReportMetric(medianOf(many)/medianOf(one), "64w/1w")
	b.ReportMetric(medianOf(oneCPU), "1w-cpu-us/commit")
	b.ReportMetric(medianOf(manyCPU), "64w-cpu-us/commit")
	b.ReportMetric(0, "ns/op")
}

// groupCommitRunFor is how long one round of one writer count runs.
const groupCommitRunFor = 2 * time.Second

// groupCommitRound runs writers goroutines putting distinct keys for
// groupCommitRunFor; it returns their commits per second, the process's
// CPU time (user and system) per commit in microseconds, and the commits
// per log sync.
func groupCommitRound(b *testing.B, e *RustEngine, writers, round int, value string) (rate, cpuMicros, perSync float64) {
	ctx := b.Context()
	statsBefore, err := e.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cpuBefore := cputime.ForBenchmark(b)
	start := time.Now()
	counts := make([]int, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Since(start) < groupCommitRunFor; n++ {
				key := fmt.Sprintf("gc/%d/%d/%d/%d", writers, round, w, n)
				if err := e.Put(ctx, key, value); err != nil {
					errs <- err
					return
				}
				counts[w]++
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	cpu := cputime.ForBenchmark(b) - cpuBefore
	statsAfter, err := e.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	syncs := max(statsAfter.Syncs-statsBefore.Syncs, 1)
	return float64(total) / elapsed.Seconds(), float64(cpu.Microseconds()) / float64(total), float64(total) / float64(syncs)
}

// medianOf is the middle value of xs (the mean of the two middle ones for
// an even count); 0 for none.
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
