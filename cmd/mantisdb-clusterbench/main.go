// Command mantisdb-clusterbench measures a 3-node MantisDB cluster beside a
// single node in one run, over HTTP with the same concurrent clients:
// writes (to the leader and to any node) and reads at each consistency
// level, each as a ratio of the single node's rate (internal/clusterfault).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mantisdb/mantisdb/internal/clusterfault"
)

func main() {
	var cfg clusterfault.BenchConfig
	var jsonPath, serverArgs, perfDir string
	flag.StringVar(&cfg.Bin, "server", "./mantisdb-rust", "server binary")
	flag.StringVar(&cfg.Engine, "engine", "rust", "server engine: rust or memory")
	flag.IntVar(&cfg.Clients, "clients", 64, "concurrent HTTP clients")
	flag.DurationVar(&cfg.Duration, "duration", 5*time.Second, "length of each phase in each round")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "rounds of every phase, interleaved; each figure is the median")
	flag.IntVar(&cfg.Keys, "keys", 10000, "preloaded keys the reads pick from")
	flag.IntVar(&cfg.ValueSize, "value-size", 100, "value size in bytes")
	flag.StringVar(&serverArgs, "server-args", "", "extra server flags, space separated (every server runs --sync always)")
	flag.StringVar(&cfg.CompareBin, "compare", "", "a second server binary: its own 3-node cluster runs beside, each cluster phase repeated on it (before/after in one run)")
	flag.StringVar(&cfg.Only, "only", "", "run only the write phases (writes) or the read phases (reads)")
	flag.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	flag.StringVar(&perfDir, "perf", "", "after the measured rounds, run every phase once more (not counted) with `perf record -g` attached to each server process, writing DIR/<phase>-<pid>.data")
	flag.Parse()
	cfg.ServerArgs = strings.Fields(serverArgs)
	if perfDir != "" {
		if err := os.MkdirAll(perfDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cfg.Profile = perfProfiler(perfDir)
	}
	cfg.Progress = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("cluster bench: %d clients, %d rounds of %v per phase, %d-byte values, %s engine, --sync always\n",
		cfg.Clients, cfg.Rounds, cfg.Duration, cfg.ValueSize, cfg.Engine)
	m := machineInfo{CPUs: runtime.NumCPU(), Model: cpuModel(), LoadBefore: loadAverage()}
	fmt.Printf("machine: %d CPUs (%s), shared by the single node, the three cluster nodes and this client; load average %s\n",
		m.CPUs, m.Model, m.LoadBefore)
	rep, err := clusterfault.Bench(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster bench:", err)
		os.Exit(1)
	}
	m.LoadAfter = loadAverage()
	fmt.Print(rep.Table())
	fmt.Printf("load average (1, 5, 15 min) before: %s, after: %s\n", m.LoadBefore, m.LoadAfter)
	if jsonPath != "" {
		b, _ := json.MarshalIndent(struct {
			clusterfault.BenchReport
			Machine machineInfo `json:"machine"`
		}{rep, m}, "", "  ")
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// machineInfo names the machine a run measured: the benchmark's figures
// are ratios on one shared machine, and its load moves them.
type machineInfo struct {
	CPUs       int    `json:"cpus"`
	Model      string `json:"cpu_model"`
	LoadBefore string `json:"load_average_before"`
	LoadAfter  string `json:"load_average_after"`
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadAverage is the 1, 5 and 15 minute load averages of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// perfProfiler returns a clusterfault.BenchConfig.Profile that records
// each phase's server processes with `perf record -g` (call graphs by frame
// pointers, which Go keeps), one file per process, until the phase ends.
func perfProfiler(dir string) func(phase string, pids []int) func() {
	slug := strings.NewReplacer(" ", "-", ":", "", ",", "", "(", "", ")", "")
	return func(phase string, pids []int) func() {
		var cmds []*exec.Cmd
		for _, pid := range pids {
			out := filepath.Join(dir, fmt.Sprintf("%s-%d.data", slug.Replace(phase), pid))
			cmd := exec.Command("perf", "record", "-q", "-F", "499", "-g", "-p", fmt.Sprint(pid), "-o", out)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "perf:", err)
				continue
			}
			cmds = append(cmds, cmd)
		}
		return func() {
			for _, cmd := range cmds {
				_ = cmd.Process.Signal(os.Interrupt)
			}
			for _, cmd := range cmds {
				_ = cmd.Wait()
			}
		}
	}
}
