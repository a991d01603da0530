//go:build rust

// Command mantisdb-scanload runs the Prefix Scan test of the heavy
// benchmark level on its own, in process against the Rust engine, and
// prints the distribution of scan latencies. It loads -keys keys
// (k/0000000000...) with 1 KiB values in key order, overwrites -over
// random keys from 8 goroutines (so a prefix's values lie scattered, as
// after the benchmark's write tests), then runs -workers goroutines for
// -dur, each scanning the first 100 keys of a random 1,000-key prefix.
// With -load=false it scans the store left in -dir by an earlier run.
// -trace writes a runtime trace of two seconds in the middle of the scans.
// The writes use --sync never (the scans do not depend on it). It prints
// scans/s, the process's CPU time per scan while the scans ran (the figure
// to compare on a shared machine) and the scan latency distribution;
// -next-times adds the longest single Next per scan; -hint=false scans
// without telling the iterator it reads 100 pairs (storage.LimitReads).
//
//	go build -tags rust -o scanload ./cmd/mantisdb-scanload
//	./scanload -dir /tmp/scan-data            # load, overwrite, scan
//	./scanload -dir /tmp/scan-data -load=false # scan again
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/trace"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mantisdb/mantisdb/internal/cputime"
	"github.com/mantisdb/mantisdb/storage"
)

func main() {
	dir := flag.String("dir", "", "data directory (required)")
	keys := flag.Int("keys", 500000, "keys in the store (the heavy level's 500,000)")
	over := flag.Int("over", 1500000, "random overwrites after the load")
	workers := flag.Int("workers", 64, "scanning goroutines (the heavy level's 64)")
	dur := flag.Duration("dur", 15*time.Second, "how long to scan (the heavy level's 15 s)")
	load := flag.Bool("load", true, "load and overwrite first; false scans the store in -dir as it is")
	nextTimes := flag.Bool("next-times", false, "time every Next call and print the longest per scan (two clock reads per pair: a tenth of a scan's CPU)")
	hint := flag.Bool("hint", true, "tell each iterator that its scan reads 100 pairs (storage.LimitReads)")
	traceOut := flag.String("trace", "", "write a runtime trace of 2 s in the middle of the scans to this file")
	flag.Parse()
	if *dir == "" || *keys < 1000 || *workers < 1 {
		fail(fmt.Errorf("-dir is required, -keys at least 1000, -workers at least 1"))
	}
	cfg := storage.DefaultConfig()
	cfg.DataDir = *dir
	cfg.Sync = storage.SyncNever
	e, err := storage.NewStorageEngine("rust", cfg)
	if err != nil {
		fail(err)
	}
	if err := e.Init(*dir); err != nil {
		fail(err)
	}
	ctx := context.Background()
	vals := make([]byte, 1<<20)
	for i := range vals {
		vals[i] = byte('a' + rand.IntN(26))
	}
	val := func(r *rand.Rand) string { o := r.IntN(len(vals) - 1024); return string(vals[o : o+1024]) }
	if *load {
		r := rand.New(rand.NewPCG(1, 2))
		var ops []storage.BatchOp
		for i := 0; i < *keys; i++ {
			ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: fmt.Sprintf("k/%010d", i), Value: val(r)})
			if len(ops) == 500 {
				if err := e.Write(ctx, ops); err != nil {
					fail(err)
				}
				ops = ops[:0]
			}
		}
		var wg sync.WaitGroup
		var n atomic.Int64
		for w := 0; w < 8; w++ {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 9))
				for n.Add(1) <= int64(*over) {
					if err := e.Put(ctx, fmt.Sprintf("k/%010d", r.IntN(*keys)), val(r)); err != nil {
						fail(err)
					}
				}
			})
		}
		wg.Wait()
		fmt.Println("loaded")
	}
	var lat [][]int64
	var maxNext [][]int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(*dur)
	if *traceOut != "" {
		go func() {
			time.Sleep(*dur / 2)
			f, err := os.Create(*traceOut)
			if err != nil {
				fail(err)
			}
			if err := trace.Start(f); err != nil {
				fail(err)
			}
			time.Sleep(2 * time.Second)
			trace.Stop()
			if err := f.Close(); err != nil {
				fail(err)
			}
		}()
	}
	lat = make([][]int64, *workers)
	maxNext = make([][]int64, *workers)
	// A profiler can attach once this line is out.
	fmt.Println("scanning")
	_ = os.Stdout.Sync()
	start := time.Now()
	cpu0 := cpuTime()
	for w := 0; w < *workers; w++ {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(deadline) {
				group := r.IntN((*keys + 999) / 1000)
				t0 := time.Now()
				it, err := e.NewIterator(ctx, fmt.Sprintf("k/%07d", group))
				if err != nil {
					fail(err)
				}
				// As the benchmark's scan does (internal/bench/store.go).
				if *hint {
					storage.LimitReads(it, 100)
				}
				n := 0
				var mx time.Duration
				for n < 100 {
					if !*nextTimes {
						if !it.Next() {
							break
						}
						n++
						continue
					}
					a := time.Now()
					ok := it.Next()
					if d := time.Since(a); d > mx {
						mx = d
					}
					if !ok {
						break
					}
					n++
				}
				if err := errors.Join(it.Error(), it.Close()); err != nil {
					fail(err)
				}
				lat[w] = append(lat[w], time.Since(t0).Microseconds())
				maxNext[w] = append(maxNext[w], mx.Microseconds())
				if n != 100 {
					fail(fmt.Errorf("a scan of k/%07d returned %d keys, want 100", group, n))
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	var all, mx []int64
	for w := range lat {
		all = append(all, lat[w]...)
		mx = append(mx, maxNext[w]...)
	}
	pr := func(name string, a []int64) {
		sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
		q := func(p float64) int64 { return a[int(p*float64(len(a)-1))] }
		var sum int64
		for _, v := range a {
			sum += v
		}
		fmt.Printf("%s n=%d mean=%d p10=%d p25=%d p50=%d p75=%d p90=%d p95=%d p99=%d p999=%d max=%d\n", name, len(a), sum/int64(len(a)), q(.1), q(.25), q(.5), q(.75), q(.9), q(.95), q(.99), q(.999), a[len(a)-1])
	}
	fmt.Printf("scans/s %.0f\n", float64(len(all))/el.Seconds())
	// The process's CPU time (user and system, every thread: background
	// work included) per scan while the scans ran: unlike scans/s, it
	// hardly depends on what else the machine runs.
	fmt.Printf("cpu_us_per_scan %.1f\n", float64(cpu.Microseconds())/float64(len(all)))
	// A scan's latency, and the longest single Next call within it (one
	// crossing into the engine, and any wait for the scheduler after it).
	pr("scan_us", all)
	if *nextTimes {
		pr("maxnext_us", mx)
	}
	if err := e.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mantisdb-scanload:", err)
	os.Exit(1)
}

// cpuTime is the CPU time the process has used so far, user and system.
func cpuTime() time.Duration {
	cpu, err := cputime.Process()
	if err != nil {
		fail(err)
	}
	return cpu
}
