//go:build rust

package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkConcurrentOperations runs the op mix of the benchmark mode's
// "Concurrent Operations" test (internal/bench/suite.go) at the heavy
// level's shape, in process and at the default `always` sync policy: 64
// workers on a key space that starts empty, 1 KiB values; 40% get, 25%
// put, 10% delete, 15% atomic batch of 10 puts, 10% prefix scan of up to
// 20 keys. b.N is the number of operations (run it with a fixed count,
// e.g. -benchtime=300000x). Besides ns/op it reports ops/s, the p99
// latency in ms, and the log syncs per operation.
//
//	go test -tags rust ./storage/ -run '^$' -bench ConcurrentOperations -benchtime=300000x -count 3
func BenchmarkConcurrentOperations(b *testing.B) {
	const (
		workers = 64
		keys    = 500_000
		size    = 1024
	)
	e := openBenchRustEngine(b, SyncAlways)
	key := func(i int) string { return fmt.Sprintf("c/%010d", i) }
	text := make([]byte, 2*size)
	for i := range text {
		text[i] = 'a' + byte(i%26)
	}
	values := string(text)
	ctx := b.Context()
	statsBefore, _ := e.Stats(ctx)

	var next atomic.Int64
	n := int64(b.N)
	lat := make([][]time.Duration, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			value := func() string {
				at := rng.IntN(size)
				return values[at : at+size]
			}
			for next.Add(1) <= n {
				t := time.Now()
				k := key(rng.IntN(keys))
				var err error
				switch r := rng.IntN(100); {
				case r < 40:
					_, err = e.Get(ctx, k)
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
				case r < 65:
					err = e.Put(ctx, k, value())
				case r < 75:
					err = e.Delete(ctx, k)
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
				case r < 90:
					ops := make([]BatchOp, 10)
					for j := range ops {
						ops[j] = BatchOp{Kind: OpPut, Key: key(rng.IntN(keys)), Value: value()}
					}
					err = e.Write(ctx, ops)
				default:
					it, ierr := e.NewIterator(ctx, k[:len(k)-3])
					if ierr != nil {
						err = ierr
						break
					}
					for c := 0; c < 20 && it.Next(); c++ {
					}
					err = it.Error()
					if cerr := it.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					errs <- err
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
	if statsAfter, err := e.Stats(ctx); err == nil {
		b.ReportMetric(float64(statsAfter.Syncs-statsBefore.Syncs)/float64(b.N), "syncs/op")
	}
}
