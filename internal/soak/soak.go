// Package soak is MantisDB's soak test (cmd/mantisdb-soak, make soak): a
// long run of heavy mixed load over HTTP against one server, reporting
// throughput, latency percentiles and the server's memory every interval,
// with abusive clients (slow headers, trickled bodies, oversized requests)
// let loose for a window in the middle. The key set grows during a
// warm-up, then stays bounded, so a server whose memory keeps growing
// after the warm-up is leaking. docs/operations/soak.md describes the
// method and the verdict.
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"

	"github.com/mantisdb/mantisdb/internal/bench"
)

// Config sets a soak run. Durations are from the start of the load.
type Config struct {
	// Server is the server binary to start on 127.0.0.1 with a fresh data
	// directory under TempDir; ignored when Target is set.
	Server string
	// ServerArgs are extra flags for Server.
	ServerArgs []string
	// TempDir holds the started server's data directory ("" = os.TempDir()).
	TempDir string
	// Target is a running server to soak instead (see bench.ParseTarget).
	Target *url.URL
	// Token is the bearer token of Target.
	Token string
	// PID is the process of Target, for its memory and file descriptors
	// (0: read process_resident_memory_bytes from its /metrics instead).
	PID int

	Duration time.Duration
	Interval time.Duration
	// Warmup is how long new keys are created; the key set is frozen at
	// its end.
	Warmup time.Duration
	// Clients is the number of concurrent load clients (connections).
	Clients int
	// Keys is the most keys the warm-up creates.
	Keys int64
	// ValueMin and ValueMax bound the length of the values written.
	ValueMin, ValueMax int

	// AttackAt and AttackFor place the window of abusive clients;
	// AttackFor 0 runs none.
	AttackAt, AttackFor time.Duration
	Attack              AttackConfig

	// RSSFactor, RSSSlack and RSSSpike make the memory rules. With ref
	// the median RSS of the steady phase before the attack: the median
	// RSS of the second half of the steady phase must not exceed
	// ref × RSSFactor + RSSSlack, and no sample after the warm-up (the
	// attack's included) ref × RSSFactor + RSSSpike.
	RSSFactor float64
	RSSSlack  int64
	RSSSpike  int64
	// MaxProbeLatency bounds a request on a fresh connection during the
	// attack window: the server still accepts and answers new clients.
	MaxProbeLatency time.Duration

	// Out receives the interval lines and the summary.
	Out io.Writer
}

// Sample is one interval of the run.
type Sample struct {
	ElapsedS   float64 `json:"elapsed_s"`
	Phase      string  `json:"phase"` // warmup, steady or attack
	Ops        int64   `json:"ops"`
	OpsPerSec  float64 `json:"ops_per_s"`
	P50Us      int64   `json:"p50_us"`
	P99Us      int64   `json:"p99_us"`
	MaxUs      int64   `json:"max_us"`
	Errors     int64   `json:"errors"`
	Keys       int64   `json:"keys"` // size of the key space in use
	RSSBytes   int64   `json:"rss_bytes"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
	DiskBytes  int64   `json:"disk_bytes,omitempty"`
	SlowConns  int64   `json:"slow_conns"` // abusive connections open at the sample
	// From the server's /metrics, to tell where memory goes: the Go heap
	// in use, the engine's value cache, its segments and compactions.
	// RSSAnonBytes is the anonymous part of RSS (heaps); the rest is
	// file pages mapped by the process.
	RSSAnonBytes int64 `json:"rss_anon_bytes"`
	GoHeapBytes  int64 `json:"go_heap_bytes"`
	CacheBytes   int64 `json:"cache_bytes"`
	Segments     int64 `json:"segments"`
	Compactions  int64 `json:"compactions"`
	// GoHeldBytes is what the Go runtime holds from the OS and has not
	// released (go_memstats_sys_bytes less heap_released): at most Go's
	// share of RSS. NativeBytes is RSSAnonBytes less that: anonymous
	// memory outside the Go runtime, the storage engine's allocator and
	// thread stacks (a lower bound). Threads is the server's OS threads.
	GoHeldBytes int64 `json:"go_held_bytes"`
	NativeBytes int64 `json:"native_bytes"`
	Threads     int64 `json:"threads"`
}

// Check is one line of the verdict.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// Result is the whole run, as written to JSON.
type Result struct {
	Started      time.Time        `json:"started"`
	Config       map[string]any   `json:"config"`
	Samples      []Sample         `json:"samples"`
	Ops          map[string]int64 `json:"ops"`
	Total        int64            `json:"total_ops"`
	Errors       int64            `json:"errors"`
	FirstError   string           `json:"first_error,omitempty"`
	P50Us        int64            `json:"p50_us"`
	P99Us        int64            `json:"p99_us"`
	P999Us       int64            `json:"p999_us"`
	MaxUs        int64            `json:"max_us"`
	FrozenKeys   int64            `json:"frozen_keys"`
	Probe        probeStats       `json:"probe"`
	Attacks      []*attackStats   `json:"attacks"`
	ServerLog    *logReport       `json:"server_log,omitempty"`
	Checks       []Check          `json:"checks"`
	Pass         bool             `json:"pass"`
	RefRSS       int64            `json:"reference_median_rss_bytes"`
	RefMemory    Memory           `json:"reference_memory"`
	LateMemory   Memory           `json:"late_memory"`
	LateRSS      int64            `json:"late_median_rss_bytes"`
	PeakRSS      int64            `json:"steady_peak_rss_bytes"`
	AttackRSS    int64            `json:"attack_peak_rss_bytes"`
	RSSLimit     int64            `json:"rss_limit_bytes"`
	RSSPeakLimit int64            `json:"rss_peak_limit_bytes"`
	ServerStops  string           `json:"server_stop,omitempty"`
}

// cleanupTimeout bounds the deletion of the soak's keys on a Target.
const cleanupTimeout = 2 * time.Minute

// Run soaks the server and returns the result; err is a run that could
// not be carried out, not a failed verdict (Result.Pass).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	res := &Result{Started: time.Now().UTC(), Config: cfg.describe()}
	target, token, pid := cfg.Target, cfg.Token, cfg.PID
	var srv *child
	if target == nil {
		var err error
		if srv, err = startChild(cfg.Server, cfg.TempDir, cfg.ServerArgs); err != nil {
			return nil, err
		}
		defer func() { _ = srv.kill(); _ = srv.remove() }()
		target, token, pid = srv.url, srv.token, srv.pid()
		fmt.Fprintf(cfg.Out, "server: %s pid %d, data %s\n", target, pid, srv.dataDir)
	}
	client, err := bench.NewHTTPClient(target, token, cfg.Clients)
	if err != nil {
		return nil, err
	}
	l := newLoad(client, cfg.Clients, cfg.Keys, cfg.ValueMin, cfg.ValueMax)
	if err := l.prepare(ctx); err != nil {
		return nil, err
	}
	mon := &monitor{target: target, token: token, pid: pid}
	if srv != nil {
		mon.dataDir = srv.dataDir
	}
	atk := newAttack(cfg.Attack, target, token, client.Namespace())
	probe := newProber(target, token, client.Namespace()+keyName(0))

	runCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	start := time.Now()
	var loadWG, attackWG, probeWG sync.WaitGroup
	l.run(runCtx, &loadWG)
	probe.run(runCtx, &probeWG)
	var stopAttack context.CancelFunc = func() {}
	attackStarted, attackStart := false, time.Duration(0)
	warm := true

	fmt.Fprintf(cfg.Out, "%8s %-7s %8s %9s %9s %9s %6s %7s %9s %9s %9s %5s %6s %4s %5s %5s\n",
		"elapsed", "phase", "ops/s", "p50", "p99", "max", "errors", "keys", "rss", "go heap", "cache", "fds", "gorout", "segs", "compn", "slow")
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	overall := newHistogram()
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-runCtx.Done():
			done = true
		}
		elapsed := time.Since(start)
		prevElapsed := time.Duration(0)
		if n := len(res.Samples); n > 0 {
			prevElapsed = time.Duration(res.Samples[n-1].ElapsedS * float64(time.Second))
		}
		// The interval just ended belongs to the attack when the attack
		// ran during any of it.
		phase := "steady"
		switch {
		case warm:
			phase = "warmup"
		case attackStarted && prevElapsed < attackStart+cfg.AttackFor:
			phase = "attack"
		}
		if !attackStarted && cfg.AttackFor > 0 && elapsed >= cfg.AttackAt && !done {
			var actx context.Context
			actx, stopAttack = context.WithTimeout(runCtx, cfg.AttackFor)
			atk.run(actx, &attackWG)
			probe.setAttack(true)
			attackStarted, attackStart = true, elapsed
			go func() { <-actx.Done(); probe.setAttack(false) }()
		}
		h, errs, first := l.interval()
		overall.Merge(h)
		res.Errors += errs
		if first != nil && res.FirstError == "" {
			res.FirstError = first.Error()
		}
		s := Sample{
			ElapsedS:  elapsed.Seconds(),
			Phase:     phase,
			Ops:       h.TotalCount(),
			OpsPerSec: float64(h.TotalCount()) / (elapsed - prevElapsed).Seconds(),
			P50Us:     h.ValueAtQuantile(50),
			P99Us:     h.ValueAtQuantile(99),
			MaxUs:     h.Max(),
			Errors:    errs,
			Keys:      l.keys.size(),
			SlowConns: atk.open.Load(),
		}
		mon.sample(ctx, &s)
		res.Samples = append(res.Samples, s)
		printSample(cfg.Out, s)
		if warm && elapsed >= cfg.Warmup {
			warm = false
			res.FrozenKeys = l.keys.freeze()
			fmt.Fprintf(cfg.Out, "-- warm-up over: the key set is frozen at %d keys\n", res.FrozenKeys)
		}
	}
	stopAttack()
	loadWG.Wait()
	attackWG.Wait()
	probeWG.Wait()
	if res.FrozenKeys == 0 {
		res.FrozenKeys = l.keys.freeze()
	}
	res.Ops = l.opCounts()
	for _, n := range res.Ops {
		res.Total += n
	}
	res.P50Us, res.P99Us, res.P999Us, res.MaxUs = overall.ValueAtQuantile(50), overall.ValueAtQuantile(99), overall.ValueAtQuantile(99.9), overall.Max()
	res.Probe = probe.stats()
	res.Attacks = atk.results()

	if srv != nil {
		if err := srv.stop(); err != nil {
			res.ServerStops = err.Error()
		}
		lr := srv.logReport()
		res.ServerLog = &lr
	} else {
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		n, err := client.Cleanup(cctx)
		cancel()
		if err != nil {
			fmt.Fprintf(cfg.Out, "clean-up: deleted %d keys, then: %v\n", n, err)
		}
	}
	res.judge(cfg)
	res.printSummary(cfg.Out)
	return res, nil
}

func (cfg *Config) check() error {
	switch {
	case cfg.Target == nil && cfg.Server == "":
		return errors.New("give a server binary to start or a target URL")
	case cfg.Duration <= 0 || cfg.Interval <= 0:
		return errors.New("the duration and the interval must be positive")
	case cfg.Warmup <= 0 || cfg.Warmup >= cfg.Duration:
		return fmt.Errorf("the warm-up (%v) must be positive and shorter than the run (%v)", cfg.Warmup, cfg.Duration)
	case cfg.Interval > cfg.Warmup:
		return fmt.Errorf("the interval (%v) must not be longer than the warm-up (%v)", cfg.Interval, cfg.Warmup)
	case cfg.Clients < 1 || cfg.Keys < scanSpan:
		return fmt.Errorf("want at least 1 client and %d keys", scanSpan)
	case cfg.ValueMin < 1 || cfg.ValueMax < cfg.ValueMin || cfg.ValueMax > valueSource:
		return fmt.Errorf("value lengths %d..%d: want 1 <= min <= max <= %d", cfg.ValueMin, cfg.ValueMax, valueSource)
	case cfg.AttackFor > 0 && (cfg.AttackAt < cfg.Warmup || cfg.AttackAt+cfg.AttackFor > cfg.Duration):
		return fmt.Errorf("the attack window %v+%v must lie after the warm-up (%v) and within the run (%v)",
			cfg.AttackAt, cfg.AttackFor, cfg.Warmup, cfg.Duration)
	case cfg.Out == nil:
		return errors.New("no output writer")
	}
	return nil
}

// describe records the settings in the JSON report.
func (cfg *Config) describe() map[string]any {
	target := ""
	if cfg.Target != nil {
		target = cfg.Target.String()
	}
	return map[string]any{
		"server": cfg.Server, "server_args": cfg.ServerArgs, "target": target,
		"duration": cfg.Duration.String(), "interval": cfg.Interval.String(), "warmup": cfg.Warmup.String(),
		"clients": cfg.Clients, "keys": cfg.Keys, "value_min": cfg.ValueMin, "value_max": cfg.ValueMax,
		"attack_at": cfg.AttackAt.String(), "attack_for": cfg.AttackFor.String(),
		"slow_headers": cfg.Attack.SlowHeaders, "slow_bodies": cfg.Attack.SlowBodies, "pregrow": cfg.Attack.Pregrow,
		"cutoff": cfg.Attack.Cutoff.String(), "rss_factor": cfg.RSSFactor, "rss_slack_bytes": cfg.RSSSlack,
		"rss_spike_bytes":   cfg.RSSSpike,
		"max_probe_latency": cfg.MaxProbeLatency.String(),
	}
}

// monitor reads the server's memory, descriptors and goroutines.
type monitor struct {
	target  *url.URL
	token   string
	pid     int
	dataDir string
}

var metricsClient = &http.Client{Timeout: 10 * time.Second}

func (m *monitor) sample(ctx context.Context, s *Sample) {
	s.RSSBytes, s.FDs, s.Goroutines = -1, -1, -1
	s.RSSAnonBytes, s.GoHeapBytes, s.CacheBytes, s.Segments, s.Compactions = -1, -1, -1, -1, -1
	s.GoHeldBytes, s.NativeBytes, s.Threads = -1, -1, -1
	if m.pid > 0 {
		if p, err := procfs.NewProc(m.pid); err == nil {
			if st, err := p.NewStatus(); err == nil {
				s.RSSBytes, s.RSSAnonBytes = int64(st.VmRSS), int64(st.RssAnon)
			}
			if n, err := p.FileDescriptorsLen(); err == nil {
				s.FDs = n
			}
		}
	}
	if m.dataDir != "" {
		s.DiskBytes = dirBytes(m.dataDir)
	}
	mf, err := m.scrape(ctx)
	if err != nil {
		return
	}
	if v, ok := gauge(mf, "go_goroutines"); ok {
		s.Goroutines = int(v)
	}
	for name, p := range map[string]*int64{
		"go_memstats_heap_inuse_bytes":       &s.GoHeapBytes,
		"mantisdb_cache_resident_bytes":      &s.CacheBytes,
		"mantisdb_storage_segments":          &s.Segments,
		"mantisdb_storage_compactions_total": &s.Compactions,
		"go_threads":                         &s.Threads,
	} {
		if v, ok := gauge(mf, name); ok {
			*p = int64(v)
		}
	}
	sys, ok1 := gauge(mf, "go_memstats_sys_bytes")
	released, ok2 := gauge(mf, "go_memstats_heap_released_bytes")
	if ok1 && ok2 {
		s.GoHeldBytes = int64(sys - released)
		if s.RSSAnonBytes >= 0 {
			s.NativeBytes = max(s.RSSAnonBytes-s.GoHeldBytes, 0)
		}
	}
	if m.pid == 0 {
		if v, ok := gauge(mf, "process_resident_memory_bytes"); ok {
			s.RSSBytes = int64(v)
		}
		if v, ok := gauge(mf, "process_open_fds"); ok {
			s.FDs = int(v)
		}
	}
}

type metricFamilies = map[string]float64

// scrape reads the server's /metrics: every unlabelled gauge and counter.
func (m *monitor) scrape(ctx context.Context) (metricFamilies, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.target.String()+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := make(metricFamilies)
	for name, f := range fams {
		if len(f.Metric) != 1 {
			continue
		}
		switch m := f.Metric[0]; {
		case m.Gauge != nil:
			out[name] = m.Gauge.GetValue()
		case m.Counter != nil:
			out[name] = m.Counter.GetValue()
		}
	}
	return out, nil
}

func gauge(mf metricFamilies, name string) (float64, bool) {
	v, ok := mf[name]
	return v, ok
}

func printSample(w io.Writer, s Sample) {
	fmt.Fprintf(w, "%7.0fs %-7s %8.0f %9s %9s %9s %6d %7d %9s %9s %9s %5d %6d %4d %5d %5d\n",
		s.ElapsedS, s.Phase, s.OpsPerSec, us(s.P50Us), us(s.P99Us), us(s.MaxUs), s.Errors, s.Keys,
		mib(s.RSSBytes), mib(s.GoHeapBytes), mib(s.CacheBytes), s.FDs, s.Goroutines, s.Segments, s.Compactions, s.SlowConns)
}

func us(v int64) string {
	switch {
	case v >= 1_000_000:
		return fmt.Sprintf("%.2fs", float64(v)/1e6)
	case v >= 1000:
		return fmt.Sprintf("%.2fms", float64(v)/1e3)
	default:
		return fmt.Sprintf("%dus", v)
	}
}

func mib(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
}

// Memory is where a phase's memory was: medians of its samples (-1 when
// a sample lacks the figure).
type Memory struct {
	RSS      int64 `json:"rss_bytes"`
	Native   int64 `json:"native_bytes"`
	GoHeld   int64 `json:"go_held_bytes"`
	GoHeap   int64 `json:"go_heap_bytes"`
	Cache    int64 `json:"cache_bytes"`
	Threads  int64 `json:"threads"`
	Segments int64 `json:"segments"`
}

func memoryOf(samples []Sample) Memory {
	med := func(f func(Sample) int64) int64 {
		if len(samples) == 0 {
			return -1
		}
		v := make([]int64, len(samples))
		for i, s := range samples {
			if v[i] = f(s); v[i] < 0 {
				return -1
			}
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return Memory{
		RSS:      med(func(s Sample) int64 { return s.RSSBytes }),
		Native:   med(func(s Sample) int64 { return s.NativeBytes }),
		GoHeld:   med(func(s Sample) int64 { return s.GoHeldBytes }),
		GoHeap:   med(func(s Sample) int64 { return s.GoHeapBytes }),
		Cache:    med(func(s Sample) int64 { return s.CacheBytes }),
		Threads:  med(func(s Sample) int64 { return s.Threads }),
		Segments: med(func(s Sample) int64 { return s.Segments }),
	}
}

// medianRSS is the median RSS of samples, -1 when any lacks one.
func medianRSS(samples []Sample) int64 {
	if len(samples) == 0 {
		return -1
	}
	v := make([]int64, len(samples))
	for i, s := range samples {
		if s.RSSBytes < 0 {
			return -1
		}
		v[i] = s.RSSBytes
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

func peakRSS(samples []Sample) int64 {
	peak := int64(-1)
	for _, s := range samples {
		peak = max(peak, s.RSSBytes)
	}
	return peak
}

// judge fills in the verdict.
func (r *Result) judge(cfg Config) {
	add := func(name string, pass bool, format string, args ...any) {
		r.Checks = append(r.Checks, Check{Name: name, Pass: pass, Detail: fmt.Sprintf(format, args...)})
	}
	detail := "none"
	if r.FirstError != "" {
		detail = "first: " + r.FirstError
	}
	add("no failed requests", r.Errors == 0, "%d of %d operations failed (%s)", r.Errors, r.Total+r.Errors, detail)

	// Memory. The reference is the steady phase before the attack (or its
	// first half when there is none): the key set is frozen, the cache
	// full and compaction running, so the server's working memory is
	// there. A leak grows with the work done, so the second half of the
	// steady phase, which does as much work again, must keep the
	// reference's level: medians, since a sample can land on a transient
	// peak (compaction holds whole segments in memory). The peaks, the
	// attack's included, must stay within the spike allowance above it.
	var steady, ref, late, attack []Sample
	for _, s := range r.Samples {
		if s.Phase != "warmup" {
			steady = append(steady, s)
		}
	}
	attacked := false
	for i, s := range steady {
		switch {
		case s.Phase == "attack":
			attack = append(attack, s)
			attacked = true
		case i >= len(steady)/2:
			late = append(late, s)
		case !attacked:
			ref = append(ref, s)
		}
	}
	r.RefRSS, r.LateRSS = medianRSS(ref), medianRSS(late)
	r.RefMemory, r.LateMemory = memoryOf(ref), memoryOf(late)
	r.PeakRSS, r.AttackRSS = peakRSS(steady), peakRSS(attack)
	if r.RefRSS <= 0 || r.LateRSS <= 0 {
		add("RSS flat after the warm-up", false, "too few RSS figures: %d reference and %d late samples "+
			"(a longer run, or --pid for a server the soak did not start)", len(ref), len(late))
	} else {
		r.RSSLimit = int64(float64(r.RefRSS)*cfg.RSSFactor) + cfg.RSSSlack
		r.RSSPeakLimit = int64(float64(r.RefRSS)*cfg.RSSFactor) + cfg.RSSSpike
		add("RSS flat after the warm-up", r.LateRSS <= r.RSSLimit,
			"median RSS of the second half of the steady phase (%d samples) %s; limit: median of the steady phase before it (%d samples) %s × %.2f + %s = %s",
			len(late), mib(r.LateRSS), len(ref), mib(r.RefRSS), cfg.RSSFactor, mib(cfg.RSSSlack), mib(r.RSSLimit))
		add("RSS peaks bounded", r.PeakRSS <= r.RSSPeakLimit,
			"highest RSS after the warm-up %s; limit: reference median %s × %.2f + %s = %s",
			mib(r.PeakRSS), mib(r.RefRSS), cfg.RSSFactor, mib(cfg.RSSSpike), mib(r.RSSPeakLimit))
		if cfg.AttackFor > 0 {
			add("RSS bounded during the attack", r.AttackRSS > 0 && r.AttackRSS <= r.RSSPeakLimit,
				"highest RSS during the attack %s; the same limit %s", mib(r.AttackRSS), mib(r.RSSPeakLimit))
		}
	}
	if cfg.AttackFor > 0 {
		for _, a := range r.Attacks {
			ok := a.Attempts > 0 && a.NotCut == 0 && a.Unexpected == 0 && a.DialErrors == 0
			issue := ""
			if a.FirstIssue != "" {
				issue = "; first issue: " + a.FirstIssue
			}
			what := fmt.Sprintf("%d connections, every one closed by the server within %v (longest %dms), answers %v%s",
				a.Attempts, cfg.Attack.Cutoff, a.LongestMs, a.Statuses, issue)
			if a.Kind == "oversized" {
				what = fmt.Sprintf("%d requests, answers %v%s", a.Attempts, a.Statuses, issue)
				ok = a.Attempts > 0 && a.Unexpected == 0
			}
			add("abusive clients: "+a.Kind, ok, "%s", what)
		}
	}
	p := r.Probe
	probeOK := p.Count+p.AttackCount > 0 && p.Failures+p.AttackFailures == 0
	probeDetail := fmt.Sprintf("%d requests on fresh connections, %d failed, slowest %s", p.Count+p.AttackCount,
		p.Failures+p.AttackFailures, us(max(p.MaxUs, p.AttackMaxUs)))
	if cfg.AttackFor > 0 {
		probeOK = probeOK && p.AttackCount > 0 && time.Duration(p.AttackMaxUs)*time.Microsecond <= cfg.MaxProbeLatency
		probeDetail += fmt.Sprintf("; during the attack %d, slowest %s (limit %v)", p.AttackCount, us(p.AttackMaxUs), cfg.MaxProbeLatency)
	}
	if p.FirstFailure != "" {
		probeDetail += "; first failure: " + p.FirstFailure
	}
	add("new connections served", probeOK, "%s", probeDetail)
	if r.ServerLog != nil {
		add("server stopped cleanly", r.ServerStops == "", "%s", orNone(r.ServerStops))
		add("no errors in the server log", r.ServerLog.ErrorCount == 0, "%d error lines%s",
			r.ServerLog.ErrorCount, firstLine(r.ServerLog.ErrorLines))
		add("token never in the server log", !r.ServerLog.TokenSeen, "token seen: %v", r.ServerLog.TokenSeen)
	}
	r.Pass = true
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.Pass
	}
}

func orNone(s string) string {
	if s == "" {
		return "exit status 0 after SIGTERM"
	}
	return s
}

func firstLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "; first: " + lines[0]
}

func (r *Result) printSummary(w io.Writer) {
	fmt.Fprintf(w, "\n%d operations (%d failed); latency p50 %s, p99 %s, p99.9 %s, max %s\n",
		r.Total, r.Errors, us(r.P50Us), us(r.P99Us), us(r.P999Us), us(r.MaxUs))
	names := make([]string, 0, len(r.Ops))
	for k := range r.Ops {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.Ops[k]))
	}
	fmt.Fprintf(w, "by kind: %s; key set frozen at %d keys\n", strings.Join(parts, ", "), r.FrozenKeys)
	fmt.Fprintf(w, "fresh-connection probe: %d outside the attack (slowest %s), %d during it (slowest %s), %d failed\n",
		r.Probe.Count, us(r.Probe.MaxUs), r.Probe.AttackCount, us(r.Probe.AttackMaxUs), r.Probe.Failures+r.Probe.AttackFailures)
	ref, late := r.RefMemory, r.LateMemory
	fmt.Fprintf(w, "memory, medians of the steady phase before the attack → its second half: RSS %s → %s; "+
		"outside the Go runtime (storage engine, thread stacks) %s → %s; held by the Go runtime %s → %s "+
		"(heap in use %s → %s); value cache %s → %s; threads %d → %d; segments %d → %d\n",
		mib(ref.RSS), mib(late.RSS), mib(ref.Native), mib(late.Native), mib(ref.GoHeld), mib(late.GoHeld),
		mib(ref.GoHeap), mib(late.GoHeap), mib(ref.Cache), mib(late.Cache), ref.Threads, late.Threads, ref.Segments, late.Segments)
	fmt.Fprintln(w, "\nverdict:")
	for _, c := range r.Checks {
		mark := "PASS"
		if !c.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, c.Name, c.Detail)
	}
	if r.Pass {
		fmt.Fprintln(w, "soak PASSED")
	} else {
		fmt.Fprintln(w, "soak FAILED")
	}
}

// WriteCSV writes the samples as CSV.
func (r *Result) WriteCSV(w io.Writer) error {
	if _, err := fmt.Fprintln(w, "elapsed_s,phase,ops,ops_per_s,p50_us,p99_us,max_us,errors,keys,rss_bytes,fds,goroutines,"+
		"disk_bytes,slow_conns,rss_anon_bytes,go_heap_bytes,cache_bytes,segments,compactions,go_held_bytes,native_bytes,threads"); err != nil {
		return err
	}
	for _, s := range r.Samples {
		if _, err := fmt.Fprintf(w, "%.1f,%s,%d,%.0f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", s.ElapsedS, s.Phase, s.Ops, s.OpsPerSec,
			s.P50Us, s.P99Us, s.MaxUs, s.Errors, s.Keys, s.RSSBytes, s.FDs, s.Goroutines, s.DiskBytes, s.SlowConns,
			s.RSSAnonBytes, s.GoHeapBytes, s.CacheBytes, s.Segments, s.Compactions, s.GoHeldBytes, s.NativeBytes, s.Threads); err != nil {
			return err
		}
	}
	return nil
}
