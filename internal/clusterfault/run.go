// Package clusterfault is the fault harness of MantisDB clusters: it runs
// three real server processes on loopback, drives concurrent clients doing
// put, get, delete and compare-and-swap with unique values over HTTP and
// the Redis protocol (CAS as WATCH/GET/MULTI/SET/EXEC there), while
// a nemesis kills (SIGKILL) the leader or a follower, pauses one (SIGSTOP),
// or cuts, blackholes or delays its raft traffic through a fault proxy.
// Every history is checked for linearizability with porcupine (a register
// per key), acknowledged inserts are checked after the run, and the leaders
// seen in each term are recorded. cmd/mantisdb-clustertest is its command.
package clusterfault

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"
)

// Config is one harness run.
type Config struct {
	// Bin is the server binary; Engine its --engine (memory or rust).
	Bin    string
	Engine string
	// Cycles is how many faults the nemesis causes.
	Cycles int
	// Clients is how many concurrent clients run; KeysPerCycle how many
	// keys they share in each cycle (fresh keys every cycle keep each key's
	// history short for the checker).
	Clients      int
	KeysPerCycle int
	// ReadConsistency is the level of the clients' reads (linearizable,
	// or stale to see the checker fail): per request over HTTP, the
	// servers' default (--read-consistency) for the Redis protocol.
	ReadConsistency string
	// Protocols the clients use: "both" (each operation picks one at
	// random), "http" or "resp".
	Protocols string
	// Dir holds the nodes' data directories (a temporary one if empty).
	Dir string
	// Log receives the servers' output and a line per cycle.
	Log io.Writer
	// Seed makes the nemesis's choices repeatable (0: random).
	Seed uint64
	// CheckTimeout bounds the linearizability check.
	CheckTimeout time.Duration
	// ServerArgs are added to every server start.
	ServerArgs []string
	// Demo runs the read demonstrations after the cycles (DemoResult).
	Demo bool
}

func (c *Config) defaults() error {
	if c.Bin == "" {
		return errors.New("no server binary")
	}
	if c.Engine == "" {
		c.Engine = "rust"
	}
	if c.Cycles <= 0 {
		c.Cycles = 10
	}
	if c.Clients <= 0 {
		c.Clients = 6
	}
	if c.KeysPerCycle <= 0 {
		c.KeysPerCycle = 4
	}
	if c.ReadConsistency == "" {
		c.ReadConsistency = "linearizable"
	}
	if c.Protocols == "" {
		c.Protocols = "both"
	}
	if _, ok := protocolNames[c.Protocols]; !ok {
		return fmt.Errorf("protocols %q is not both, http or resp", c.Protocols)
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 5 * time.Minute
	}
	return nil
}

// Report is what a run found.
type Report struct {
	Cycles  int
	Faults  map[string]int
	Ops     int // operations in the checked history
	OK      int // with a definite answer
	Unknown int // writes whose outcome was unknown
	// ByProtocol counts the history's operations per protocol, and
	// UnknownByProtocol those of unknown outcome.
	ByProtocol        map[string]int
	UnknownByProtocol map[string]int
	// Aborted counts Redis CAS whose EXEC answered nil.
	Aborted         int
	Keys            int
	Violations      int // keys whose history is not linearizable
	CheckTimedOut   int // keys the checker could not decide in time
	BadHistory      []string
	LedgerAcked     int // acknowledged inserts of never-rewritten keys
	LedgerLost      int // of those, missing after the run
	SplitBrainTerms []uint64
	Elections       []time.Duration // leader kill to new leader
	// ElectionDetects: kill to the winner's candidacy; ElectionWins: that
	// candidacy to leading (servers that report it); ElectionsOneRound:
	// elections with one candidacy among the survivors; SlowElections: the
	// slowest ones with what the survivors' counters say.
	ElectionDetects   []time.Duration
	ElectionWins      []time.Duration
	ElectionsOneRound int
	SlowElections     []string
	Errors            []string // liveness failures: no recovery, crashes
	Demo              *DemoResult
	Seed              uint64
	Duration          time.Duration
}

// Passed says the run found nothing wrong.
func (r Report) Passed() bool {
	demoOK := r.Demo == nil || (r.Demo.StaleCaught && r.Demo.IsolatedRefused && r.Demo.DeposedRefused)
	return demoOK && r.Violations == 0 && r.CheckTimedOut == 0 && r.LedgerLost == 0 && len(r.SplitBrainTerms) == 0 && len(r.Errors) == 0
}

// Percentile returns the p-th percentile (0..100) of the election times.
func (r Report) Percentile(p float64) time.Duration { return percentile(r.Elections, p) }

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// Summary is the report as a few lines.
func (r Report) Summary() string {
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cluster-test %s: %d fault cycles in %v (seed %d)\n", verdict, r.Cycles, r.Duration.Round(time.Second), r.Seed)
	names := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  %-28s %d\n", k, r.Faults[k])
	}
	fmt.Fprintf(&b, "  history: %d operations on %d keys (%d definite, %d writes of unknown outcome)\n", r.Ops, r.Keys, r.OK, r.Unknown)
	for _, p := range []string{"http", "resp"} {
		if n, ok := r.ByProtocol[p]; ok {
			fmt.Fprintf(&b, "    over %-4s %d operations, %d of unknown outcome\n", p, n, r.UnknownByProtocol[p])
		}
	}
	if r.Aborted > 0 {
		fmt.Fprintf(&b, "    Redis CAS with a nil EXEC (recorded as changing nothing): %d\n", r.Aborted)
	}
	if n := r.ByProtocol["final"]; n > 0 {
		fmt.Fprintf(&b, "    final reads of every key (HTTP): %d\n", n)
	}
	fmt.Fprintf(&b, "  linearizability violations: %d (undecided keys: %d)\n", r.Violations, r.CheckTimedOut)
	fmt.Fprintf(&b, "  acknowledged writes lost: %d of %d acknowledged inserts\n", r.LedgerLost, r.LedgerAcked)
	fmt.Fprintf(&b, "  terms with two leaders: %d\n", len(r.SplitBrainTerms))
	if n := len(r.Elections); n > 0 {
		fmt.Fprintf(&b, "  new leader after kill -9 of the leader: p50 %v, p99 %v, max %v (n=%d)\n",
			r.Percentile(50).Round(time.Millisecond), r.Percentile(99).Round(time.Millisecond), r.Percentile(100).Round(time.Millisecond), n)
		if len(r.ElectionDetects) > 0 {
			ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
			fmt.Fprintf(&b, "    kill to the winner's candidacy: p50 %v, p99 %v; candidacy to leading: p50 %v, p99 %v (n=%d)\n",
				ms(percentile(r.ElectionDetects, 50)), ms(percentile(r.ElectionDetects, 99)),
				ms(percentile(r.ElectionWins, 50)), ms(percentile(r.ElectionWins, 99)), len(r.ElectionDetects))
		}
		fmt.Fprintf(&b, "    elections won in the first candidacy round: %d of %d\n", r.ElectionsOneRound, n)
		for _, s := range r.SlowElections {
			fmt.Fprintf(&b, "    slow: %s\n", s)
		}
	}
	if d := r.Demo; d != nil {
		fmt.Fprintf(&b, "  checker catches a stale read: %v; cut-off follower refuses linearizable reads: %v; deposed leader refuses them: %v\n",
			d.StaleCaught, d.IsolatedRefused, d.DeposedRefused)
		for _, n := range d.Notes {
			fmt.Fprintf(&b, "    %s\n", n)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	for i, l := range r.BadHistory {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more operations\n", len(r.BadHistory)-20)
			break
		}
		fmt.Fprintf(&b, "  bad history: %s\n", l)
	}
	return b.String()
}

// harness is one run in progress.
type harness struct {
	cfg    Config
	nodes  []*node
	faults *faults
	probe  *httpClient // cluster state, patient
	fast   *httpClient // election timing
	start  time.Time

	cycle atomic.Int64

	mu        sync.Mutex
	history   []porcupine.Operation
	lastValue map[string]string
	ledger    map[string]string
	elections []election
}

func (h *harness) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *harness) recordElection(e election) {
	h.mu.Lock()
	h.elections = append(h.elections, e)
	h.mu.Unlock()
}

func (h *harness) logf(format string, args ...any) {
	h.nodes[0].logMu.Lock()
	defer h.nodes[0].logMu.Unlock()
	fmt.Fprintf(h.cfg.Log, "harness "+format+"\n", args...)
}

// restart starts a killed node again on its data directory.
func (h *harness) restart(ctx context.Context, n *node) error {
	if err := n.start(h.cfg.Bin, h.cfg.Engine, false, "", h.cfg.ServerArgs); err != nil {
		return err
	}
	return n.waitHealthy(ctx, 60*time.Second)
}

// Run starts the cluster, runs the cycles with the clients going, checks
// the history and stops the cluster.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.defaults(); err != nil {
		return Report{}, err
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "mantisdb-clustertest-")
		if err != nil {
			return Report{}, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	if cfg.ReadConsistency != "linearizable" {
		cfg.ServerArgs = append(slices.Clone(cfg.ServerArgs), "--read-consistency", cfg.ReadConsistency)
	}
	h := &harness{cfg: cfg, faults: newFaults(), start: time.Now(),
		probe: newHTTPClient(time.Second, "stale"), fast: newHTTPClient(200*time.Millisecond, "stale"),
		lastValue: make(map[string]string), ledger: make(map[string]string)}
	nodes, err := newNodes(3, cfg.Dir, h.faults, cfg.Log)
	if err != nil {
		return Report{}, err
	}
	h.nodes = nodes
	redis.SetLogger(redisLog{h})
	defer func() {
		for _, n := range nodes {
			n.stop()
			n.proxy.close()
		}
	}()
	for _, n := range nodes {
		if err := n.start(cfg.Bin, cfg.Engine, true, nodes[0].proxy.addr(), cfg.ServerArgs); err != nil {
			return Report{}, err
		}
		if err := n.waitHealthy(ctx, 60*time.Second); err != nil {
			return Report{}, err
		}
	}
	if _, err := waitStable(ctx, h.probe, nodes, 30*time.Second); err != nil {
		return Report{}, fmt.Errorf("the new cluster: %w", err)
	}

	rep := Report{Seed: cfg.Seed, Faults: make(map[string]int)}
	mctx, stopMonitor := context.WithCancel(ctx)
	mon := newMonitor(nodes)
	go mon.run(mctx, 100*time.Millisecond)

	wctx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		wg.Add(1)
		go func() { defer wg.Done(); h.client(wctx, c, rand.New(rand.NewPCG(cfg.Seed, uint64(c)+1))) }()
	}

	nem := &nemesis{h: h, rng: rand.New(rand.NewPCG(cfg.Seed, 0))}
	for i := range cfg.Cycles {
		if ctx.Err() != nil {
			break
		}
		f := fault(nem.rng.IntN(int(numFaults)))
		what, err := nem.cycle(ctx, f)
		rep.Cycles++
		rep.Faults[f.String()]++
		h.logf("cycle %d/%d: %s", i+1, cfg.Cycles, what)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("cycle %d (%s): %v", i+1, f, err))
			break
		}
		h.cycle.Add(1)
	}
	stopClients()
	wg.Wait()
	stopMonitor()

	// Whatever state the last cycle left, heal and let the cluster settle
	// before the final reads.
	h.faults.heal()
	for _, n := range nodes {
		if !n.alive() {
			if err := h.restart(ctx, n); err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
		}
	}
	if _, err := waitStable(ctx, h.probe, nodes, 30*time.Second); err != nil {
		rep.Errors = append(rep.Errors, "before the final reads: "+err.Error())
	}
	h.finalReads(ctx)
	h.checkLedger(ctx, &rep)
	h.check(&rep)
	if cfg.Demo && len(rep.Errors) == 0 {
		d, err := h.demo(ctx)
		rep.Demo = &d
		if err != nil {
			rep.Errors = append(rep.Errors, "read demonstrations: "+err.Error())
		}
	}
	rep.SplitBrainTerms = mon.splitTerms()
	for _, e := range h.elections {
		rep.Elections = append(rep.Elections, e.took)
		if e.won > 0 {
			rep.ElectionDetects = append(rep.ElectionDetects, e.detect)
			rep.ElectionWins = append(rep.ElectionWins, e.won)
		}
		if e.candidacies == 1 {
			rep.ElectionsOneRound++
		}
	}
	slow := slices.Clone(h.elections)
	slices.SortFunc(slow, func(a, b election) int { return cmp.Compare(b.took, a.took) })
	for _, e := range slow[:min(3, len(slow))] {
		rep.SlowElections = append(rep.SlowElections, fmt.Sprintf("%v: %s", e.took.Round(time.Millisecond), e.detail()))
	}
	rep.Duration = time.Since(h.start)
	return rep, nil
}

// client runs operations until ctx ends, on the current cycle's keys, each
// over a protocol picked at random among the configured ones.
func (h *harness) client(ctx context.Context, id int, rng *rand.Rand) {
	clients := map[string]kvClient{}
	for _, p := range protocolNames[h.cfg.Protocols] {
		switch p {
		case "http":
			clients[p] = httpKV{newHTTPClient(3*time.Second, h.cfg.ReadConsistency)}
		case "resp":
			rc := newRESPClient(h.nodes, 3*time.Second)
			defer rc.close()
			clients[p] = respKV{rc}
		}
	}
	protos := protocolNames[h.cfg.Protocols]
	seq := 0
	for ctx.Err() == nil {
		seq++
		n := h.nodes[rng.IntN(len(h.nodes))]
		proto := protos[rng.IntN(len(protos))]
		c := clients[proto]
		key := fmt.Sprintf("c%d/k%d", h.cycle.Load(), rng.IntN(h.cfg.KeysPerCycle))
		value := fmt.Sprintf("v%d.%d", id, seq)
		octx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		switch r := rng.IntN(100); {
		case r < 40:
			call := h.now()
			v, err := c.get(octx, n, key)
			if err == nil {
				h.record(id, call, kvInput{Kind: opGet, Key: key, Proto: proto}, kvOutput{Value: v}, nil)
				h.remember(key, v)
			}
		case r < 65:
			call := h.now()
			err := c.put(octx, n, key, value)
			h.record(id, call, kvInput{Kind: opPut, Key: key, Value: value, Proto: proto}, kvOutput{}, err)
			h.remember(key, value)
		case r < 72:
			call := h.now()
			err := c.del(octx, n, key)
			h.record(id, call, kvInput{Kind: opDelete, Key: key, Proto: proto}, kvOutput{}, err)
		case r < 90:
			expected := h.recall(key)
			call := h.now()
			ok, err := c.cas(octx, n, key, expected, value)
			out := kvOutput{OK: ok}
			if errors.Is(err, errAborted) {
				out.Aborted, err = true, nil
			}
			h.record(id, call, kvInput{Kind: opCAS, Key: key, Expected: expected, Value: value, Proto: proto}, out, err)
		default:
			lk := fmt.Sprintf("ledger/%d/%d", id, seq)
			if err := c.put(octx, n, lk, value); err == nil {
				h.mu.Lock()
				h.ledger[lk] = value
				h.mu.Unlock()
			}
		}
		cancel()
		if ctx.Err() == nil {
			time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
		}
	}
}

// record adds a finished operation: definite (err nil), of unknown outcome
// (it stays open to the end of the history), or a definite failure
// (dropped: it had no effect).
func (h *harness) record(client int, call int64, in kvInput, out kvOutput, err error) {
	ret := h.now()
	switch {
	case err == nil:
	case errors.Is(err, errIndefinite):
		out.Unknown = true
		ret = 1 << 62
	default:
		return
	}
	h.mu.Lock()
	h.history = append(h.history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

func (h *harness) remember(key, value string) {
	h.mu.Lock()
	h.lastValue[key] = value
	h.mu.Unlock()
}

func (h *harness) recall(key string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastValue[key]
}

// finalReads reads every key of the history once more, from every node in
// turn, so the history ends with what the cluster holds.
func (h *harness) finalReads(ctx context.Context) {
	hc := newHTTPClient(10*time.Second, "linearizable")
	h.mu.Lock()
	keys := make(map[string]bool)
	for _, op := range h.history {
		keys[op.Input.(kvInput).Key] = true
	}
	h.mu.Unlock()
	i := 0
	for k := range keys {
		n := h.nodes[i%len(h.nodes)]
		i++
		call := h.now()
		v, err := hc.get(ctx, n.httpAddr, k)
		if err == nil {
			h.record(len(h.nodes)+h.cfg.Clients, call, kvInput{Kind: opGet, Key: k, Proto: "final"}, kvOutput{Value: v}, nil)
		}
	}
}

// checkLedger reads back every acknowledged insert.
func (h *harness) checkLedger(ctx context.Context, rep *Report) {
	hc := newHTTPClient(10*time.Second, "linearizable")
	i := 0
	for k, want := range h.ledger {
		rep.LedgerAcked++
		n := h.nodes[i%len(h.nodes)]
		i++
		got, err := hc.get(ctx, n.httpAddr, k)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("reading back %s: %v", k, err))
			continue
		}
		if got != want {
			rep.LedgerLost++
			rep.BadHistory = append(rep.BadHistory, fmt.Sprintf("acknowledged insert %s=%q reads back %q", k, want, got))
		}
	}
}

// check runs the linearizability checker key by key.
func (h *harness) check(rep *Report) {
	parts := kvModel.Partition(h.history)
	rep.Keys = len(parts)
	rep.Ops = len(h.history)
	rep.ByProtocol, rep.UnknownByProtocol = map[string]int{}, map[string]int{}
	for _, op := range h.history {
		p := op.Input.(kvInput).Proto
		rep.ByProtocol[p]++
		if op.Output.(kvOutput).Aborted {
			rep.Aborted++
		}
		if op.Output.(kvOutput).Unknown {
			rep.Unknown++
			rep.UnknownByProtocol[p]++
		} else {
			rep.OK++
		}
	}
	per := h.cfg.CheckTimeout / time.Duration(max(len(parts), 1))
	per = max(per, time.Second)
	for _, part := range parts {
		res := checkHistory(part, per)
		switch {
		case res.TimedOut:
			rep.CheckTimedOut++
		case !res.Linearized:
			rep.Violations++
			rep.BadHistory = append(rep.BadHistory, res.Bad...)
		}
	}
}
