package clusterfault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mantisdb/mantisdb/internal/serverproc"
)

// The cluster benchmark runs on the same process management as the fault
// harness: one single-node server and a 3-node cluster (raft traffic
// direct, no proxy) side by side on this machine, loaded over HTTP by the
// same client with the same concurrency, phase after phase in interleaved
// rounds, so the figures are ratios from one run.

// BenchConfig is one benchmark run.
type BenchConfig struct {
	Bin        string
	Engine     string
	Clients    int           // concurrent HTTP clients (64)
	Duration   time.Duration // per phase and round
	Rounds     int           // rounds of every phase (3)
	Keys       int           // preloaded keys the reads pick from
	ValueSize  int
	ServerArgs []string // added to every server start (e.g. --sync always)
	// CompareBin, if set, is a second server binary: a 3-node cluster of
	// it runs beside the first, and each cluster phase is followed by the
	// same phase on it ("cluster (compare): ..."), for a before/after
	// comparison in one run.
	CompareBin string
	// Only restricts the run to the phases of one kind: "writes" or
	// "reads"; empty runs every phase.
	Only string
	// Profile, if set, is called at the start of each phase of one more
	// round after the measured ones, with the phase's name and the ids of
	// the server processes it loads (every node of a cluster); the
	// function it returns is called when the phase ends. The rates of that
	// round are not in the report, so a profiler's overhead does not bias
	// them.
	Profile  func(phase string, pids []int) (stop func())
	Dir      string
	Log      io.Writer
	Progress io.Writer
}

// BenchPhase is one measured load.
type BenchPhase struct {
	Name   string  `json:"name"`
	Ops    int64   `json:"ops"`
	Errors int64   `json:"errors"`
	PerSec float64 `json:"ops_per_sec"`
	// Rounds are the rates of each round; PerSec is their median.
	Rounds []float64 `json:"rounds"`
	// Base names the single-node phase this one is compared with.
	Base  string  `json:"base,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	// CPUPerOp is the server processes' CPU time (user and system, from
	// /proc/PID/stat, every node of a cluster) per successful operation,
	// in microseconds: the median of the rounds in CPURounds. On a shared
	// machine it moves far less than the rates do.
	CPUPerOp  float64   `json:"server_cpu_us_per_op"`
	CPURounds []float64 `json:"server_cpu_us_per_op_rounds"`
}

// BenchReport is every phase of a run.
type BenchReport struct {
	Clients   int           `json:"clients"`
	Duration  time.Duration `json:"phase_duration"`
	ValueSize int           `json:"value_size"`
	Rounds    int           `json:"rounds"`
	Phases    []BenchPhase  `json:"phases"`
}

// Bench runs the benchmark.
func Bench(ctx context.Context, cfg BenchConfig) (BenchReport, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 10000
	}
	if cfg.ValueSize <= 0 {
		cfg.ValueSize = 100
	}
	if cfg.Only != "" && cfg.Only != "writes" && cfg.Only != "reads" {
		return BenchReport{}, fmt.Errorf("-only: %q is neither writes nor reads", cfg.Only)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "mantisdb-clusterbench-")
		if err != nil {
			return BenchReport{}, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	rep := BenchReport{Clients: cfg.Clients, Duration: cfg.Duration, ValueSize: cfg.ValueSize, Rounds: cfg.Rounds}
	lc := newLoadClient(cfg.Clients)
	value := strings.Repeat("v", cfg.ValueSize)

	single, err := startSingle(ctx, cfg)
	if err != nil {
		return rep, err
	}
	defer single.stop()
	if err := lc.preload(ctx, single.addr, cfg.Keys, value); err != nil {
		return rep, err
	}
	leader, all, pids, stop, err := startBenchCluster(ctx, cfg, cfg.Bin, "cluster", lc, value)
	defer stop()
	if err != nil {
		return rep, err
	}
	var cmpLeader *node
	var cmpAll []string
	var cmpPids []int
	if cfg.CompareBin != "" {
		var stopCmp func()
		cmpLeader, cmpAll, cmpPids, stopCmp, err = startBenchCluster(ctx, cfg, cfg.CompareBin, "compare", lc, value)
		defer stopCmp()
		if err != nil {
			return rep, err
		}
	}
	singlePids := []int{single.proc.Pid()}
	phases := []benchPhaseSpec{
		{"single node: writes", "", []string{single.addr}, singlePids, opWrite("")},
		{"cluster: writes to the leader", "single node: writes", []string{leader.httpAddr}, pids, opWrite("")},
		{"cluster: writes to any node", "single node: writes", all, pids, opWrite("")},
		{"single node: reads", "", []string{single.addr}, singlePids, opRead("")},
		{"cluster: linearizable reads, leader", "single node: reads", []string{leader.httpAddr}, pids, opRead("linearizable")},
		{"cluster: linearizable reads, any node", "single node: reads", all, pids, opRead("linearizable")},
		{"cluster: leader reads, any node", "single node: reads", all, pids, opRead("leader")},
		{"cluster: stale reads, any node", "single node: reads", all, pids, opRead("stale")},
	}
	if cmpLeader != nil {
		// The second cluster's phase follows each of the first's.
		var both []benchPhaseSpec
		for _, p := range phases {
			both = append(both, p)
			if name, ok := strings.CutPrefix(p.name, "cluster: "); ok {
				targets := cmpAll
				if len(p.targets) == 1 {
					targets = []string{cmpLeader.httpAddr}
				}
				both = append(both, benchPhaseSpec{"cluster (compare): " + name, p.base, targets, cmpPids, p.op})
			}
		}
		phases = both
	}
	if cfg.Only != "" {
		kind := strings.TrimSuffix(cfg.Only, "s")
		kept := phases[:0]
		for _, p := range phases {
			if strings.Contains(p.name, kind) {
				kept = append(kept, p)
			}
		}
		phases = kept
	}
	// Rounds interleave the phases, so a shared machine's changing load
	// falls on single node and cluster alike; each phase's figure is its
	// median over the rounds.
	rates := make([][]float64, len(phases))
	cpus := make([][]float64, len(phases))
	errs := make([]int64, len(phases))
	ops := make([]int64, len(phases))
	for r := range cfg.Rounds {
		for i, ph := range phases {
			before := cpuTime(ph.pids)
			p := lc.run(ctx, ph.name, ph.targets, ph.op, cfg.Duration, cfg.Keys, value)
			cpu := perOp(cpuTime(ph.pids)-before, p.Ops)
			rates[i] = append(rates[i], p.PerSec)
			cpus[i] = append(cpus[i], cpu)
			errs[i] += p.Errors
			ops[i] += p.Ops
			fmt.Fprintf(cfg.Progress, "  round %d  %-40s %8.0f ops/s  %6.1f us CPU/op  (%d errors)\n", r+1, ph.name, p.PerSec, cpu, p.Errors)
		}
	}
	if cfg.Profile != nil {
		for _, ph := range phases {
			stop := cfg.Profile(ph.name, ph.pids)
			p := lc.run(ctx, ph.name, ph.targets, ph.op, cfg.Duration, cfg.Keys, value)
			stop()
			fmt.Fprintf(cfg.Progress, "  profile  %-40s %8.0f ops/s  (not counted)\n", ph.name, p.PerSec)
		}
	}
	for i, ph := range phases {
		p := BenchPhase{Name: ph.name, Ops: ops[i], Errors: errs[i], PerSec: median(rates[i]), Rounds: rates[i],
			CPUPerOp: median(cpus[i]), CPURounds: cpus[i]}
		if ph.base != "" {
			for _, b := range rep.Phases {
				if b.Name == ph.base && b.PerSec > 0 {
					p.Base, p.Ratio = ph.base, p.PerSec/b.PerSec
				}
			}
		}
		rep.Phases = append(rep.Phases, p)
	}
	return rep, nil
}

// benchPhaseSpec is one phase to measure: op on targets, compared with the
// phase named base.
type benchPhaseSpec struct {
	name, base string
	targets    []string
	pids       []int // the server processes whose CPU time the phase uses
	op         loadOp
}

// clockTicks is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// Linux whatever the kernel's own tick).
const clockTicks = 100

// cpuTime is the CPU time (user and system, every thread) the processes
// have used so far, read from /proc/PID/stat; 0 where it cannot be read.
func cpuTime(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name (field 2) may hold spaces: fields count from
		// after its closing parenthesis, where field 3 (state) starts.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
		stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
		total += time.Duration(utime+stime) * time.Second / clockTicks
	}
	return total
}

// perOp is cpu per operation in microseconds (0 without operations).
func perOp(cpu time.Duration, ops int64) float64 {
	if ops <= 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(ops)
}

// startBenchCluster starts a 3-node cluster of bin in cfg.Dir/sub, raft
// traffic direct, and preloads it; stop ends it (also after an error).
// pids are the nodes' process ids.
func startBenchCluster(ctx context.Context, cfg BenchConfig, bin, sub string, lc *loadClient, value string) (leader *node, all []string, pids []int, stop func(), err error) {
	nodes, err := newNodes(3, filepath.Join(cfg.Dir, sub), newFaults(), cfg.Log)
	stop = func() {
		for _, n := range nodes {
			n.stop()
			n.proxy.close()
		}
	}
	if err != nil {
		return nil, nil, nil, stop, err
	}
	for _, n := range nodes {
		n.direct = true
		if err := n.start(bin, cfg.Engine, true, nodes[0].raftAddr, cfg.ServerArgs); err != nil {
			return nil, nil, nil, stop, err
		}
		if err := n.waitHealthy(ctx, 60*time.Second); err != nil {
			return nil, nil, nil, stop, err
		}
	}
	probe := newHTTPClient(time.Second, "stale")
	leader, err = waitStable(ctx, probe, nodes, 30*time.Second)
	if err != nil {
		return nil, nil, nil, stop, err
	}
	if err := lc.preload(ctx, leader.httpAddr, cfg.Keys, value); err != nil {
		return nil, nil, nil, stop, err
	}
	for _, n := range nodes {
		all = append(all, n.httpAddr)
		pids = append(pids, n.running().Pid())
	}
	return leader, all, pids, stop, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Table is the report as a Markdown table.
func (r BenchReport) Table() string {
	var b strings.Builder
	b.WriteString("| phase | ops/s (median) | rounds | vs one node | server CPU us/op (median; rounds) | errors |\n|---|---:|---|---:|---|---:|\n")
	for _, p := range r.Phases {
		rounds := make([]string, len(p.Rounds))
		for i, x := range p.Rounds {
			rounds[i] = fmt.Sprintf("%.0f", x)
		}
		ratio := ""
		if p.Base != "" {
			ratio = fmt.Sprintf("%.2fx", p.Ratio)
		}
		cpu := make([]string, len(p.CPURounds))
		for i, x := range p.CPURounds {
			cpu[i] = fmt.Sprintf("%.0f", x)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.0f (%s) | %d |\n", p.Name, p.PerSec, strings.Join(rounds, ", "), ratio, p.CPUPerOp, strings.Join(cpu, ", "), p.Errors)
	}
	return b.String()
}

// singleServer is the one-node server of the benchmark.
type singleServer struct {
	addr string
	proc *serverproc.Proc
}

func startSingle(ctx context.Context, cfg BenchConfig) (*singleServer, error) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := append([]string{"--engine", cfg.Engine, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--data-dir", filepath.Join(cfg.Dir, "single"), "--sync", "always", "--log-level", "warn", "--resp-port", "-1"}, cfg.ServerArgs...)
	p, err := serverproc.Start(cfg.Bin, args, func(line string) { _, _ = io.WriteString(cfg.Log, line+"\n") }, nil)
	if err != nil {
		return nil, err
	}
	s := &singleServer{addr: addr, proc: p}
	if err := serverproc.WaitHealthy(ctx, "http://"+addr, 60*time.Second, p.Exited()); err != nil {
		s.stop()
		return nil, fmt.Errorf("the single-node server did not start: %w", err)
	}
	return s, nil
}

func (s *singleServer) stop() { _ = s.proc.Stop(10 * time.Second) }

// loadOp builds one request of a load.
type loadOp func(addr string, worker, i, keys int, value string, rng *rand.Rand) (*http.Request, error)

func opWrite(string) loadOp {
	return func(addr string, worker, i, _ int, value string, _ *rand.Rand) (*http.Request, error) {
		body, _ := json.Marshal(map[string]string{"value": value})
		req, err := http.NewRequest("PUT", fmt.Sprintf("http://%s/api/v1/kv/w%d-%d", addr, worker, i%1000), bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
}

func opRead(consistency string) loadOp {
	q := ""
	if consistency != "" {
		q = "?consistency=" + consistency
	}
	return func(addr string, _, _, keys int, _ string, rng *rand.Rand) (*http.Request, error) {
		return http.NewRequest("GET", fmt.Sprintf("http://%s/api/v1/kv/r%d%s", addr, rng.IntN(keys), q), nil)
	}
}

// loadClient drives the load with keep-alive connections.
type loadClient struct {
	c       *http.Client
	clients int
}

func newLoadClient(clients int) *loadClient {
	return &loadClient{clients: clients, c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: clients * 4, MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute,
	}}}
}

// preload writes the keys the reads pick from, in batches.
func (l *loadClient) preload(ctx context.Context, addr string, keys int, value string) error {
	for start := 0; start < keys; start += 1000 {
		var ops []map[string]string
		for i := start; i < min(start+1000, keys); i++ {
			ops = append(ops, map[string]string{"op": "put", "key": fmt.Sprintf("r%d", i), "value": value})
		}
		body, _ := json.Marshal(map[string]any{"operations": ops, "atomic": true})
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/v1/kv/batch", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := l.c.Do(req)
		if err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("preload: %d %s", resp.StatusCode, b)
		}
	}
	return nil
}

// run measures op for d with l.clients workers spread over targets.
func (l *loadClient) run(ctx context.Context, name string, targets []string, op loadOp, d time.Duration, keys int, value string) BenchPhase {
	var ops, errs atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	start := time.Now()
	for w := range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			addr := targets[w%len(targets)]
			for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
				req, err := op(addr, w, i, keys, value, rng)
				if err != nil {
					errs.Add(1)
					continue
				}
				resp, err := l.c.Do(req.WithContext(ctx))
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
					continue
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return BenchPhase{Name: name, Ops: ops.Load(), Errors: errs.Load(), PerSec: float64(ops.Load()) / elapsed.Seconds()}
}
