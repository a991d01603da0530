//go:build rust

package cluster

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/cputime"
	"github.com/mantisdb/mantisdb/storage"
)

// BenchmarkWrites64 loads a one-node rust engine and a 3-node cluster on
// the rust engine (sync always) with 64 concurrent writers of 100-byte
// values, in one process and without HTTP, to profile the write paths:
//
//	go test -tags rust -run '^$' -bench Writes64 -cpuprofile cpu.out ./internal/cluster
func BenchmarkWrites64(b *testing.B) {
	value := strings.Repeat("v", 100)
	load := func(b *testing.B, targets []storage.StorageEngine) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		cpu0 := cputime.ForBenchmark(b)
		start := time.Now()
		b.ResetTimer()
		for w := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := targets[w%len(targets)]
				for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
					if err := e.Put(b.Context(), fmt.Sprintf("w%d-%d", w, i%1000), value); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
		// CPU time of the whole process (every node, the writers) per
		// write: far steadier than the rate on a shared machine.
		b.ReportMetric(float64((cputime.ForBenchmark(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/write")
		return elapsed
	}
	b.Run("single", func(b *testing.B) {
		cfg := storage.DefaultConfig()
		dir := b.TempDir()
		cfg.DataDir = dir
		e, err := storage.NewStorageEngine("rust", cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Init(dir); err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		load(b, []storage.StorageEngine{e})
	})
	// The variants: the engine synced in every Apply (before), unsynced
	// (now), and unsynced with the raft log opened with bbolt's
	// NoFreelistSync (measured, not adopted).
	variants := []struct {
		name                      string
		syncApply, noFreelistSync bool
	}{{"sync-apply", true, false}, {"unsynced-apply", false, false}, {"unsynced-nofreelist", false, true}}
	for _, target := range []string{"leader", "any"} {
		for _, v := range variants {
			b.Run("cluster-"+target+"/"+v.name, func(b *testing.B) {
				nodes := startBenchCluster(b, func(cfg *Config) { cfg.syncApply, cfg.noFreelistSync = v.syncApply, v.noFreelistSync })
				var targets []storage.StorageEngine
				for _, n := range nodes {
					if target == "any" || n.IsLeader() {
						targets = append(targets, n)
					}
				}
				elapsed := load(b, targets)
				var forwarded, rpcs uint64
				for _, n := range nodes {
					f, err := n.Figures()
					if err != nil {
						b.Fatal(err)
					}
					if f.Leader {
						// The leader's raft loop appends before it replicates.
						b.ReportMetric(float64(f.Entries)/float64(max(f.Batches, 1)), "entries/apply")
						b.ReportMetric(float64(f.LogAppendEntries)/float64(max(f.LogAppends, 1)), "entries/append")
						b.ReportMetric(float64(f.LogAppendTime.Microseconds())/1000/float64(max(f.LogAppends, 1)), "ms/append")
						b.ReportMetric(f.LogAppendTime.Seconds()/elapsed.Seconds(), "append-busy")
					}
					forwarded += f.ForwardedWrites
					rpcs += f.ForwardBatches
				}
				if rpcs > 0 {
					b.ReportMetric(float64(forwarded)/float64(rpcs), "writes/forward")
				}
			})
		}
	}
}

// startBenchCluster starts three rust nodes on loopback with the server's
// default raft timing.
func startBenchCluster(b *testing.B, tune func(*Config)) []*Engine {
	b.Helper()
	var nodes []*Engine
	b.Cleanup(func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	})
	for i := range 3 {
		cfg := Config{NodeID: fmt.Sprintf("n%d", i+1), RaftAddr: "127.0.0.1:0", Engine: "rust", EngineConfig: storage.DefaultConfig(), Bootstrap: i == 0}
		if i > 0 {
			cfg.Join = nodes[0].RaftAddr()
		}
		if tune != nil {
			tune(&cfg)
		}
		e, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Init(filepath.Join(b.TempDir(), cfg.NodeID)); err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, e)
		if i == 0 {
			for !e.IsLeader() {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	// Every node has caught up with the configuration before the load.
	for _, n := range nodes {
		for n.LeaderID() != "n1" || n.fsm.applied.Load() < nodes[0].fsm.applied.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nodes
}
