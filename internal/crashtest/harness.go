// Package crashtest is a crash harness for the MantisDB server: it drives
// concurrent writers (single puts, deletes and atomic batches) over HTTP,
// or over the Redis protocol (SET, DEL and MSET, pipelined too), kills the server with SIGKILL at random moments, restarts it on the same
// data, and checks that every acknowledged write survived with its exact
// value and that no batch was torn. cmd/mantisdb-crashtest runs it;
// docs/operations/crash-harness.md describes it.
//
// The check is exact because each key has one writer per cycle (the key
// space is split between the writers, differently each cycle) and a writer
// sends one request at a time: a key's history is a sequence, every
// acknowledged write in it is known, and at most one operation per writer
// is in flight at the kill. That operation may or may not have happened,
// but an atomic batch must have happened on all of its keys or on none.
// Once the restarted server shows which, the model follows it, so the
// state carries over from cycle to cycle on the same data.
package crashtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mantisdb/mantisdb/internal/serverproc"
)

// Config is one harness run. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// Cycles is the number of load-kill-restart-verify cycles.
	Cycles int
	// Writers is the number of concurrent writers.
	Writers int
	// Keys is the size of the key space (at least 8 per writer, the
	// largest batch).
	Keys int
	// MinLoad and MaxLoad bound the load before each kill; the kill comes
	// at a uniformly random moment between them.
	MinLoad, MaxLoad time.Duration
	// LongLoads is the fraction of cycles whose load lasts LongLoad to
	// twice that instead: long enough for the server's background pass
	// (hint files, compaction), which first runs 1 s after start, so
	// compaction happens, and is sometimes killed, under load.
	LongLoads float64
	LongLoad  time.Duration
	// StartupKills is the fraction of restarts first killed during
	// start-up (recovery), after up to MaxStartupKill; 0 disables them.
	StartupKills   float64
	MaxStartupKill time.Duration
	// Seed seeds the random choices (operations, sizes, kill moments).
	// The kill moment within a request depends on timing, so a seed
	// repeats the operation mix, not the exact interleaving.
	Seed uint64
	// Protocol is what the writers speak: "http" (the default: puts,
	// deletes and atomic batches of the JSON API) or "resp" (SET, DEL and
	// MSET over the Redis protocol, half of them in pipelines of 2 to
	// maxPipeline commands on distinct keys).
	Protocol string
	// Progress prints a line every Progress cycles; 0 prints none.
	Progress int
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

// maxBatch is the most keys one batch writes.
const maxBatch = 8

// DefaultConfig is 1,000 cycles of 8 writers over 2,048 keys, killed after
// 50-500 ms of load (one cycle in twenty after 1-2 s), one restart in ten
// killed again during recovery.
func DefaultConfig() Config {
	return Config{
		Cycles:         1000,
		Writers:        8,
		Keys:           2048,
		MinLoad:        50 * time.Millisecond,
		MaxLoad:        500 * time.Millisecond,
		LongLoads:      0.05,
		LongLoad:       time.Second,
		StartupKills:   0.1,
		MaxStartupKill: 30 * time.Millisecond,
		Progress:       10,
	}
}

// Check reports the first bad setting of c.
func (c Config) Check() error {
	switch {
	case c.Cycles < 1:
		return fmt.Errorf("cycles is %d: want at least 1", c.Cycles)
	case c.Writers < 1:
		return fmt.Errorf("writers is %d: want at least 1", c.Writers)
	case c.Keys < maxBatch*c.Writers || c.Keys > 99999:
		return fmt.Errorf("keys is %d: want %d (%d per writer) to 99999", c.Keys, maxBatch*c.Writers, maxBatch)
	case c.MinLoad <= 0 || c.MaxLoad < c.MinLoad:
		return fmt.Errorf("load %v-%v: want 0 < min <= max", c.MinLoad, c.MaxLoad)
	case c.LongLoads < 0 || c.LongLoads > 1:
		return fmt.Errorf("long load fraction %v: want 0 to 1", c.LongLoads)
	case c.LongLoads > 0 && c.LongLoad <= 0:
		return fmt.Errorf("long load %v: want more than 0", c.LongLoad)
	case c.StartupKills < 0 || c.StartupKills > 1:
		return fmt.Errorf("start-up kill fraction %v: want 0 to 1", c.StartupKills)
	case c.StartupKills > 0 && c.MaxStartupKill <= 0:
		return fmt.Errorf("start-up kill delay %v: want more than 0", c.MaxStartupKill)
	case c.Protocol != "" && c.Protocol != ProtocolHTTP && c.Protocol != ProtocolRESP:
		return fmt.Errorf("protocol %q: want %s or %s", c.Protocol, ProtocolHTTP, ProtocolRESP)
	}
	return nil
}

// The protocols of Config.Protocol.
const (
	ProtocolHTTP = "http"
	ProtocolRESP = "resp"
)

// Summary counts what a run did and found.
type Summary struct {
	// Protocol is the writers' protocol (Config.Protocol).
	Protocol string
	Cycles   int
	// Puts, Deletes and Batches count acknowledged operations.
	Puts, Deletes, Batches int
	// WholeBatches counts acknowledged batches whose every key still held
	// the batch's write at the next verification, so each was seen whole.
	WholeBatches int
	// Pipelined counts the acknowledged writes sent in a pipeline of two
	// or more commands (Redis protocol only).
	Pipelined int
	// KeysVerified counts key comparisons (the whole key space, every
	// cycle); PointReads counts the extra GETs of the keys a cycle wrote.
	KeysVerified, PointReads int
	// InFlight* count the operations in flight at a kill, by what the
	// restarted server showed of them.
	InFlightApplied, InFlightNotApplied, InFlightUnobservable int
	// LongLoads counts cycles with a long load; StartupKills counts kills
	// during start-up.
	LongLoads, StartupKills int
	// Compactions sums the servers' compaction counters, read just before
	// each kill; Segments is the segment count at the last verification.
	Compactions, Segments uint64
	Violations            []Violation
	Elapsed               time.Duration

	stopped bool // an error other than a violation ended the run
}

// Acked is the number of acknowledged writes.
func (s Summary) Acked() int { return s.Puts + s.Deletes + s.Batches }

// InFlight is the number of operations in flight at the kills.
func (s Summary) InFlight() int {
	return s.InFlightApplied + s.InFlightNotApplied + s.InFlightUnobservable
}

// Line is the one-line summary.
func (s Summary) Line() string {
	verdict := "PASS"
	if len(s.Violations) > 0 || s.stopped {
		verdict = "FAIL"
	}
	writes := fmt.Sprintf("%d puts, %d deletes, %d atomic batches, %d batches seen whole", s.Puts, s.Deletes, s.Batches, s.WholeBatches)
	if s.Protocol == ProtocolRESP {
		writes = fmt.Sprintf("over RESP: %d SET, %d DEL, %d MSET, %d MSET seen whole, %d pipelined", s.Puts, s.Deletes, s.Batches, s.WholeBatches, s.Pipelined)
	}
	return fmt.Sprintf("crash-test %s: %d cycles, %d acknowledged writes (%s), "+
		"%d key checks, %d point reads, %d in flight at a kill resolved (%d applied, %d not applied, %d unobservable), "+
		"%d long loads, %d kills during start-up, %d compactions, %d violations, %s",
		verdict, s.Cycles, s.Acked(), writes,
		s.KeysVerified, s.PointReads, s.InFlight(), s.InFlightApplied, s.InFlightNotApplied, s.InFlightUnobservable,
		s.LongLoads, s.StartupKills, s.Compactions, len(s.Violations), s.Elapsed.Round(10*time.Millisecond))
}

// ErrViolations is returned when a verification found broken promises;
// Summary.Violations lists them.
var ErrViolations = errors.New("acknowledged data was lost, changed or torn")

// record is one operation a writer sent, and whether it was acknowledged.
// pipelined marks one sent in a pipeline of two or more.
type record struct {
	op        *op
	acked     bool
	pipelined bool
}

// run is the state of one harness run.
type run struct {
	cfg    Config
	l      Launcher
	model  *model
	rng    *rand.Rand
	nextID uint64
	sum    Summary
	inst   Instance
	cl     *client
	began  time.Time
}

// Run runs the harness against the servers l starts. It returns the
// summary, and ErrViolations (or another error that stopped it) when the
// run did not pass. The data behind l must start empty.
func Run(ctx context.Context, cfg Config, l Launcher) (Summary, error) {
	r := &run{cfg: cfg, l: l, model: newModel(cfg.Keys), rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d616e746973)), began: time.Now()}
	if r.cfg.Out == nil {
		r.cfg.Out = io.Discard
	}
	if r.cfg.Protocol == "" {
		r.cfg.Protocol = ProtocolHTTP
	}
	r.sum.Protocol = r.cfg.Protocol
	if err := cfg.Check(); err != nil {
		return r.sum, err
	}
	err := r.cycles(ctx)
	if r.inst != nil {
		// Stopped by an error: leave no server behind.
		_ = r.inst.Kill()
		r.cl.close()
	}
	r.sum.Elapsed = time.Since(r.began)
	r.sum.stopped = err != nil
	if err == nil && len(r.sum.Violations) > 0 {
		err = ErrViolations
	}
	return r.sum, err
}

func (r *run) cycles(ctx context.Context) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	// The data must start empty, or the model is wrong from the start.
	if err := r.verify(ctx, 0, nil, nil); err != nil || len(r.sum.Violations) > 0 {
		return err
	}
	for c := 1; c <= r.cfg.Cycles; c++ {
		if err := r.cycle(ctx, c); err != nil {
			return fmt.Errorf("cycle %d: %w", c, err)
		}
		r.sum.Cycles = c
		if len(r.sum.Violations) > 0 {
			return nil
		}
		if r.cfg.Progress > 0 && c%r.cfg.Progress == 0 {
			fmt.Fprintf(r.cfg.Out, "cycle %d/%d: %d acknowledged writes, %d in flight resolved (%d applied), %d key checks, %d start-up kills, %d compactions, %s\n",
				c, r.cfg.Cycles, r.sum.Acked(), r.sum.InFlight(), r.sum.InFlightApplied, r.sum.KeysVerified,
				r.sum.StartupKills, r.sum.Compactions, time.Since(r.began).Round(100*time.Millisecond))
		}
	}
	// Last, a clean shutdown and restart must keep everything too.
	if err := r.inst.Stop(); err != nil {
		return fmt.Errorf("clean shutdown after the last cycle: %w", err)
	}
	r.inst = nil
	r.cl.close()
	if err := r.start(ctx); err != nil {
		return fmt.Errorf("restart after the clean shutdown: %w", err)
	}
	if err := r.verify(ctx, r.cfg.Cycles+1, nil, nil); err != nil {
		return fmt.Errorf("after the clean shutdown: %w", err)
	}
	if err := r.inst.Stop(); err != nil {
		return fmt.Errorf("final clean shutdown: %w", err)
	}
	r.inst = nil
	r.cl.close()
	return nil
}

// start starts a server and waits until it is healthy.
func (r *run) start(ctx context.Context) error {
	inst, err := r.l.Start(ctx)
	if err != nil {
		return err
	}
	r.inst, r.cl = inst, newClient(inst.URL(), r.cfg.Writers+2)
	return serverproc.WaitHealthy(ctx, inst.URL(), time.Minute, nil)
}

// cycle loads the server, kills it, restarts it and verifies.
func (r *run) cycle(ctx context.Context, c int) error {
	load := r.cfg.MinLoad + time.Duration(r.rng.Int64N(int64(r.cfg.MaxLoad-r.cfg.MinLoad)+1))
	if r.cfg.LongLoads > 0 && r.rng.Float64() < r.cfg.LongLoads {
		load = r.cfg.LongLoad + time.Duration(r.rng.Int64N(int64(r.cfg.LongLoad)+1))
		r.sum.LongLoads++
	}
	records, serverErrs, err := r.load(ctx, c, load)
	if err != nil {
		return err
	}
	r.sum.Violations = append(r.sum.Violations, serverErrs...)

	// Every acknowledged operation is applied in its writer's order;
	// writers own disjoint keys, so the order between writers is free.
	var inflight []*op
	var batches []*op
	touched := make(map[int]bool)
	for _, recs := range records {
		for _, rec := range recs {
			for _, w := range rec.op.writes {
				touched[w.key] = true
			}
			if !rec.acked {
				inflight = append(inflight, rec.op)
				continue
			}
			r.model.apply(rec.op)
			if rec.pipelined {
				r.sum.Pipelined++
			}
			switch rec.op.kind {
			case opPut:
				r.sum.Puts++
			case opDelete:
				r.sum.Deletes++
			case opBatch:
				r.sum.Batches++
				batches = append(batches, rec.op)
			}
		}
	}
	// Seen whole: every key of the batch must still hold its write (what
	// the verification checks); keys overwritten later in the cycle are
	// checked against their later value instead.
	for _, b := range batches {
		whole := true
		for _, w := range b.writes {
			whole = whole && r.model.keys[w.key] == b.after(w)
		}
		if whole {
			r.sum.WholeBatches++
		}
	}

	if r.cfg.StartupKills > 0 && r.rng.Float64() < r.cfg.StartupKills {
		d := time.Duration(r.rng.Int64N(int64(r.cfg.MaxStartupKill) + 1))
		if err := r.l.StartAndKill(ctx, d); err != nil {
			return fmt.Errorf("kill during start-up: %w", err)
		}
		r.sum.StartupKills++
	}
	if err := r.start(ctx); err != nil {
		return fmt.Errorf("restart after the kill: %w", err)
	}
	keys := make([]int, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return r.verify(ctx, c, inflight, keys)
}

// load runs the writers for d, then kills the server mid-load. It returns
// each writer's operations in order, and a violation for every write the
// server answered with a 5xx.
func (r *run) load(ctx context.Context, c int, d time.Duration) ([][]record, []Violation, error) {
	owned := make([][]int, r.cfg.Writers)
	for k := 0; k < r.cfg.Keys; k++ {
		w := (k + c) % r.cfg.Writers
		owned[w] = append(owned[w], k)
	}
	stop := make(chan struct{})
	respAddr := r.inst.RESPAddr()
	records := make([][]record, r.cfg.Writers)
	errs := make([]error, r.cfg.Writers)
	var wg sync.WaitGroup
	for w := range r.cfg.Writers {
		// Operation ids are handed out in blocks, one per writer and cycle,
		// so they stay unique without sharing a counter.
		firstID := r.nextID + uint64(w)*maxOpsPerCycle + 1
		seed := r.rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.cfg.Protocol == ProtocolRESP {
				records[w], errs[w] = r.respWriter(ctx, stop, respAddr, owned[w], firstID, seed)
			} else {
				records[w], errs[w] = r.writer(ctx, stop, owned[w], firstID, seed)
			}
		}()
	}
	r.nextID += uint64(r.cfg.Writers) * maxOpsPerCycle

	var statsErr error
	select {
	case <-time.After(d):
		// The compaction counter is per process: read it while it lives.
		st, err := r.cl.stats(ctx)
		statsErr = err
		r.sum.Compactions += st.Compactions
	case <-ctx.Done():
	}
	close(stop)
	killErr := r.inst.Kill()
	wg.Wait()
	r.inst = nil
	r.cl.close()
	if err := errors.Join(killErr, ctx.Err(), statsErr); err != nil {
		return nil, nil, err
	}
	var violations []Violation
	for w, err := range errs {
		if err == nil {
			continue
		}
		var ae *answerError
		if errors.As(err, &ae) && ae.status >= 500 {
			last := records[w][len(records[w])-1].op
			violations = append(violations, Violation{Cycle: c, Key: keyName(last.writes[0].key),
				What:     fmt.Sprintf("%s (op %d) failed with a server error before the kill", last.kind, last.id),
				Expected: "2xx", Found: err.Error()})
			continue
		}
		var we *writeError
		if errors.As(err, &we) {
			violations = append(violations, Violation{Cycle: c, Key: keyName(we.op.writes[0].key),
				What:     fmt.Sprintf("%s (op %d) got a wrong reply before the kill", we.op.kind, we.op.id),
				Expected: we.err.want, Found: we.err.got.String()})
			continue
		}
		return nil, nil, fmt.Errorf("writer %d: %w", w, err)
	}
	return records, violations, nil
}

// maxOpsPerCycle bounds one writer's operations in one cycle.
const maxOpsPerCycle = 1 << 24

// writer sends operations on its keys one at a time until stop closes, and
// returns them in order. It stops at the first one not acknowledged (the
// kill): that one is recorded as in flight. A 4xx answer is an error of
// the harness (nothing was written); a 5xx answer is returned as the
// error, with the operation recorded as in flight.
func (r *run) writer(ctx context.Context, stop <-chan struct{}, keys []int, firstID, seed uint64) ([]record, error) {
	rng := rand.New(rand.NewPCG(seed, firstID))
	var recs []record
	for i := uint64(0); i < maxOpsPerCycle; i++ {
		select {
		case <-stop:
			return recs, nil
		default:
		}
		o := newOp(rng, firstID+i, keys)
		err := r.cl.send(ctx, o)
		if err == nil {
			recs = append(recs, record{op: o, acked: true})
			continue
		}
		if rejected(err) {
			return recs, fmt.Errorf("the server refused %s (op %d): %w", o.kind, o.id, err)
		}
		recs = append(recs, record{op: o})
		var ae *answerError
		if errors.As(err, &ae) {
			return recs, err
		}
		return recs, nil
	}
	return recs, nil
}

// newOp draws one operation on keys: 55% single puts, 10% single deletes,
// 35% atomic batches of 2-8 keys (one write in seven a delete).
func newOp(rng *rand.Rand, id uint64, keys []int) *op {
	o := &op{id: id}
	switch p := rng.IntN(100); {
	case p < 55:
		o.kind = opPut
		o.writes = []write{{key: keys[rng.IntN(len(keys))], size: valueSize(rng)}}
	case p < 65:
		o.kind = opDelete
		o.writes = []write{{key: keys[rng.IntN(len(keys))], del: true}}
	default:
		o.kind = opBatch
		n := 2 + rng.IntN(maxBatch-1)
		for _, i := range rng.Perm(len(keys))[:n] {
			w := write{key: keys[i]}
			if rng.IntN(7) == 0 {
				w.del = true
			} else {
				w.size = valueSize(rng)
			}
			o.writes = append(o.writes, w)
		}
	}
	return o
}

// valueSize draws a value length: 40% small enough to live in the index
// (under 64 bytes), 55% up to 2 KiB, 5% 8-32 KiB, so segments fill and
// roll over a long run.
func valueSize(rng *rand.Rand) int {
	switch p := rng.IntN(100); {
	case p < 40:
		return minValueSize + rng.IntN(64-minValueSize)
	case p < 95:
		return 64 + rng.IntN(2048-64)
	default:
		return 8192 + rng.IntN(32768-8192)
	}
}

// verify reads the whole key space back, resolves the in-flight
// operations, checks every key against the model, re-reads the keys the
// cycle touched one by one, and checks the live key count.
func (r *run) verify(ctx context.Context, c int, inflight []*op, touched []int) error {
	got, err := r.cl.scan(ctx)
	if err != nil {
		return err
	}
	res := r.model.check(c, got, inflight)
	r.sum.Violations = append(r.sum.Violations, res.violations...)
	r.sum.KeysVerified += res.keysVerified
	r.sum.InFlightNotApplied += res.resolved[resolvedNotApplied]
	r.sum.InFlightApplied += res.resolved[resolvedApplied]
	r.sum.InFlightUnobservable += res.resolved[resolvedUnobservable]
	if len(res.violations) > 0 {
		return nil
	}
	var rc *respConn
	if r.cfg.Protocol == ProtocolRESP {
		if rc, err = dialRESP(ctx, r.inst.RESPAddr()); err != nil {
			return err
		}
		defer rc.close()
	}
	for _, k := range touched {
		var o observed
		if rc != nil {
			o, err = rc.get(keyName(k))
		} else {
			o, err = r.cl.get(ctx, keyName(k))
		}
		if err != nil {
			return err
		}
		r.sum.PointReads++
		if s := r.model.keys[k]; !o.matches(s, k) {
			r.sum.Violations = append(r.sum.Violations, Violation{Cycle: c, Key: keyName(k),
				What: "a GET answers other than the scan", Expected: s.String(), Found: describe(o.value, o.present)})
		}
	}
	st, err := r.cl.stats(ctx)
	if err != nil {
		return err
	}
	r.sum.Segments = st.Segments
	if live := r.model.live(); st.Keys != uint64(live) {
		r.sum.Violations = append(r.sum.Violations, Violation{Cycle: c, Key: "(all)",
			What: "the stats key count differs from the live keys", Expected: fmt.Sprint(live), Found: fmt.Sprint(st.Keys)})
	}
	if rc != nil {
		n, err := rc.dbsize()
		if err != nil {
			return err
		}
		if live := r.model.live(); n != uint64(live) {
			r.sum.Violations = append(r.sum.Violations, Violation{Cycle: c, Key: "(all)",
				What: "DBSIZE differs from the live keys", Expected: fmt.Sprint(live), Found: fmt.Sprint(n)})
		}
	}
	return nil
}

// Report writes the violations, at most limit of them, one a line.
func Report(w io.Writer, vs []Violation, limit int) {
	for i, v := range vs {
		if i == limit {
			fmt.Fprintf(w, "... and %d more\n", len(vs)-limit)
			return
		}
		fmt.Fprintln(w, strings.TrimSpace(v.String()))
	}
}
