// Package bench is MantisDB's benchmark mode (mantisdb --benchmark-only):
// a suite of eight tests run in process against one or two engines, or
// over HTTP against a running server, each bounded by an operation count
// and a duration, with latency percentiles from an HDR histogram, cache hit
// rates from the engine's counters, a verdict against the original targets
// and a JSON report. docs/performance/benchmark-mode.md describes it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// cleanupTimeout bounds the clean-up after a run, which also runs after an
// interrupt, when the run's context is already cancelled.
const cleanupTimeout = time.Minute

// Options configure a run.
type Options struct {
	Level Level
	// Engines are the engines to run in process, e.g. ["rust", "memory"];
	// ignored when Target is set.
	Engines []string
	// Config configures the engines in process (DataDir is replaced by a
	// temporary directory).
	Config storage.Config
	// Target, when set, is a running server to benchmark over HTTP.
	Target *url.URL
	// AuthToken is sent as a bearer token to Target.
	AuthToken string
	// TempDir is where the temporary data directory goes; empty means
	// os.TempDir().
	TempDir string
	// Out receives the results as text.
	Out io.Writer
	// Progress, when not nil, receives a live progress line (a terminal).
	Progress io.Writer
	// Version is the mantisdb version recorded in the report.
	Version string
	// Targets are the figures to pass; the zero value means DefaultTargets.
	Targets Targets
}

// subject is one thing under test: an engine in process or a server.
type subject interface {
	label() string
	store() store
	// withCache returns a store whose cache holds at most cacheBytes, and
	// the function that releases it.
	withCache(cacheBytes int64) (store, func() error, error)
	close(ctx context.Context) error
}

// subjectRun is a subject with what the suite knows about its data.
type subjectRun struct {
	subject
	main store
	// mainLoaded is true once every key of the main key space exists.
	mainLoaded bool
}

// session is one run of the suite.
type session struct {
	lvl      Level
	opts     Options
	targets  Targets
	out      io.Writer
	progress io.Writer
	// values is random text twice the value size; every value is a slice of it.
	values string
}

// Run runs the suite, printing each result as it comes and a summary at
// the end, and returns the report. It returns an error when the suite
// could not run to the end; missed targets are in the report, not an error.
// In process, the engines live in a fresh temporary directory that is
// removed afterwards; over HTTP, every key is under a random prefix that is
// deleted afterwards (best effort).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := checkLevel(opts.Level); err != nil {
		return nil, err
	}
	s := &session{lvl: opts.Level, opts: opts, targets: opts.Targets, out: opts.Out, progress: opts.Progress}
	if s.targets == (Targets{}) {
		s.targets = DefaultTargets
	}
	if s.out == nil {
		s.out = io.Discard
	}
	s.values = randomText(2 * s.lvl.ValueSize)
	rep := &Report{
		Version:         SchemaVersion,
		MantisDBVersion: opts.Version,
		Started:         time.Now().UTC().Truncate(time.Second),
		Machine:         currentMachine(),
		Targets:         s.targets,
	}
	subjects, where, closeAll, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	rep.Config = s.runConfig(subjects)
	s.printHeader(rep, where)
	runErr := s.runAll(ctx, subjects, rep)
	if err := closeAll(); err != nil {
		fmt.Fprintf(s.out, "\nwarning: cleaning up: %v\n", err)
	}
	if runErr != nil {
		return nil, runErr
	}
	rep.Pass = overall(rep.Tests)
	s.printSummary(rep)
	return rep, nil
}

// checkLevel refuses a level that cannot run.
func checkLevel(l Level) error {
	if l.Workers < 1 || l.Keys < 1 || l.ValueSize < 1 || l.MaxOps < 1 || l.Duration <= 0 ||
		l.PressureKeys < 1 || l.CacheFraction <= 0 || l.ScanLimit < 1 || l.Counters < 1 {
		return fmt.Errorf("stress level %q has a zero or negative parameter: %+v", l.Name, l)
	}
	return nil
}

// open opens the subjects and returns where the data lives (for the
// header) and the function that closes them and removes their data.
func (s *session) open(ctx context.Context) ([]*subjectRun, string, func() error, error) {
	if s.opts.Target != nil {
		return s.openTarget(ctx)
	}
	if len(s.opts.Engines) == 0 {
		return nil, "", nil, errors.New("no engine to benchmark")
	}
	dir, err := os.MkdirTemp(s.opts.TempDir, "mantisdb-bench-")
	if err != nil {
		return nil, "", nil, fmt.Errorf("creating the temporary data directory: %w", err)
	}
	var subjects []*subjectRun
	closeAll := func() error {
		var errs []error
		for _, sub := range subjects {
			errs = append(errs, sub.close(context.Background()))
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", dir, err))
		}
		return errors.Join(errs...)
	}
	for _, name := range s.opts.Engines {
		es, err := newEngineSubject(name, s.opts.Config, dir)
		if err != nil {
			return nil, "", nil, errors.Join(err, closeAll())
		}
		subjects = append(subjects, &subjectRun{subject: es, main: es.store()})
	}
	return subjects, fmt.Sprintf("in process, data in %s (removed afterwards)", dir), closeAll, nil
}

func (s *session) openTarget(ctx context.Context) ([]*subjectRun, string, func() error, error) {
	st, err := newHTTPStore(s.opts.Target, s.opts.AuthToken, s.lvl.Workers)
	if err != nil {
		return nil, "", nil, err
	}
	engine, err := st.engineName(ctx)
	if err != nil {
		return nil, "", nil, fmt.Errorf("reaching the server at %s: %w", s.opts.Target, err)
	}
	sub := &httpSubject{st: st, engine: engine}
	closeAll := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		return sub.close(ctx)
	}
	where := fmt.Sprintf("over HTTP at %s, server engine %s (its sync and cache settings apply); keys under %q, deleted afterwards",
		s.opts.Target, engine, st.ns)
	return []*subjectRun{{subject: sub, main: st}}, where, closeAll, nil
}

func (s *session) runConfig(subjects []*subjectRun) RunConfig {
	c := RunConfig{
		Level:              s.lvl.Name,
		Workers:            s.lvl.Workers,
		Keys:               s.lvl.Keys,
		ValueSize:          s.lvl.ValueSize,
		DurationS:          s.lvl.Duration.Seconds(),
		MaxOps:             s.lvl.MaxOps,
		PressureKeys:       s.lvl.PressureKeys,
		PressureCacheBytes: s.lvl.pressureCache(),
	}
	for _, sub := range subjects {
		c.Engines = append(c.Engines, sub.label())
	}
	if s.opts.Target != nil {
		c.Target = s.opts.Target.String()
		c.PressureCacheBytes = 0
	} else {
		c.Sync = string(s.opts.Config.Sync)
		c.CacheSize = s.opts.Config.CacheSize
	}
	return c
}

// runAll runs every test on every subject, test by test, so the engines'
// figures for one test are measured close together in time.
func (s *session) runAll(ctx context.Context, subjects []*subjectRun, rep *Report) error {
	for _, t := range tests {
		fmt.Fprintf(s.out, "\n%s: %s\n", t.name, t.about)
		tr := TestReport{ID: t.id, Name: t.name, Engines: make(map[string]*Result)}
		for _, sub := range subjects {
			res, err := s.runTest(ctx, t, sub)
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				return fmt.Errorf("%s on %s: %w", t.name, sub.label(), err)
			}
			tr.Engines[sub.label()] = res
			s.printResult(sub.label(), res)
		}
		rep.Tests = append(rep.Tests, tr)
	}
	return nil
}

// runTest sets a test up, measures it and judges the result.
func (s *session) runTest(ctx context.Context, t test, sub *subjectRun) (res *Result, err error) {
	ph, err := t.setup(ctx, s, sub)
	if err != nil {
		return nil, fmt.Errorf("setting up: %w", err)
	}
	if ph.close != nil {
		defer func() { err = errors.Join(err, ph.close()) }()
	}
	before, beforeErr := ph.st.cache(ctx)
	m := measure(ctx, s.lvl, fmt.Sprintf("%s [%s]", t.name, sub.label()), s.progress, ph.op)
	if ph.after != nil {
		ph.after(ctx, &m)
	}
	after, afterErr := ph.st.cache(ctx)
	res = newResult(m)
	if beforeErr == nil && afterErr == nil {
		res.CacheHitRate = hitRate(before, after)
	}
	if ph.note != nil && afterErr == nil {
		res.Note = ph.note(after.capacity)
	}
	s.targets.judge(res)
	return res, nil
}

// newResult turns a measurement into a Result (not yet judged).
func newResult(m measurement) *Result {
	r := &Result{
		Ops:       m.ops,
		Errors:    m.errors,
		Conflicts: m.conflicts,
		ElapsedS:  m.elapsed.Seconds(),
		Latency: Latency{
			P50:  m.hist.ValueAtQuantile(50),
			P95:  m.hist.ValueAtQuantile(95),
			P99:  m.hist.ValueAtQuantile(99),
			P999: m.hist.ValueAtQuantile(99.9),
			Max:  m.hist.Max(),
			Mean: m.hist.Mean(),
		},
	}
	if m.elapsed > 0 {
		r.OpsPerSec = float64(m.ops) / m.elapsed.Seconds()
	}
	if m.firstErr != nil {
		r.FirstError = m.firstErr.Error()
	}
	return r
}

// hitRate is the share of cache lookups between two readings that hit;
// nil when there were none.
func hitRate(before, after cacheCounters) *float64 {
	if after.hits < before.hits || after.misses < before.misses {
		return nil // the counters were reset: no figure is better than a wrong one
	}
	hits, misses := after.hits-before.hits, after.misses-before.misses
	if hits+misses == 0 {
		return nil
	}
	rate := float64(hits) / float64(hits+misses)
	return &rate
}

// loadMain writes the whole main key space, untimed, unless it is there.
func (s *session) loadMain(ctx context.Context, sub *subjectRun) error {
	if sub.mainLoaded {
		return nil
	}
	if err := s.load(ctx, sub, sub.main, s.lvl.Keys, mainKey); err != nil {
		return fmt.Errorf("loading the main key space: %w", err)
	}
	sub.mainLoaded = true
	return nil
}

// load writes keys key(0)..key(n-1) into st in atomic batches, untimed.
func (s *session) load(ctx context.Context, sub *subjectRun, st store, n int, key func(int) string) error {
	if s.progress != nil {
		fmt.Fprintf(s.progress, "\rloading %d keys into %s (untimed)\x1b[K", n, sub.label())
		defer fmt.Fprint(s.progress, "\r\x1b[K")
	}
	w := &worker{rng: rand.New(rand.NewPCG(rand.Uint64(), 0))}
	batch := make([]kv, 0, loadBatch)
	for i := range n {
		batch = append(batch, kv{key(i), s.value(w)})
		if len(batch) == loadBatch || i == n-1 {
			if err := st.batchPut(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// value returns a value of the level's size at a random offset of s.values.
func (s *session) value(w *worker) string {
	off := w.rng.IntN(len(s.values) - s.lvl.ValueSize + 1)
	return s.values[off : off+s.lvl.ValueSize]
}

// checkGet reads key and fails unless it holds a value of the level's size.
func (s *session) checkGet(ctx context.Context, st store, key string) error {
	v, found, err := st.get(ctx, key)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("key %q is missing", key)
	case len(v) != s.lvl.ValueSize:
		return fmt.Errorf("key %q holds %d bytes, want %d", key, len(v), s.lvl.ValueSize)
	}
	return nil
}

// randomText returns n random letters and digits: valid UTF-8, so values
// travel as plain JSON strings over HTTP.
func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}
