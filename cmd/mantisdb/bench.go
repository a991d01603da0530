package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mantisdb/mantisdb/internal/bench"
	"github.com/mantisdb/mantisdb/storage"
)

// exitTargetsMissed is the exit code of a benchmark that ran to the end
// but missed a target (a CI job can tell it from a failure to run, 1).
const exitTargetsMissed = 3

// benchConfig holds the flags of benchmark mode. Its zero value is the
// default, so a server's config is unchanged by it.
type benchConfig struct {
	only        bool
	stress      string // a level name; empty means light
	output      string
	target      string
	allowRemote bool
	// Set by checkBenchmark:
	level     bench.Level
	targetURL *url.URL
}

// benchFlags are the flags that only mean something with --benchmark-only.
var benchFlags = []string{"benchmark-stress", "benchmark-output", "benchmark-target", "benchmark-allow-remote"}

// addBenchFlags declares the --benchmark-* flags on fs.
func addBenchFlags(fs *flag.FlagSet, b *benchConfig) {
	fs.BoolVar(&b.only, "benchmark-only", false,
		"run the benchmark suite instead of serving: in process against --engine (both: rust and memory side by side) "+
			"in a temporary data directory, or against --benchmark-target; see docs/performance/benchmark-mode.md")
	fs.Var(&levelFlag{&b.stress}, "benchmark-stress",
		"benchmark level: light (under 30s), medium (under 2min), heavy (under 5min) or extreme (10min or more)")
	fs.StringVar(&b.output, "benchmark-output", "", "write the benchmark results as JSON to this file")
	fs.StringVar(&b.target, "benchmark-target", "",
		"benchmark a running server over HTTP at this URL, e.g. http://127.0.0.1:8080 (its engine and settings apply; sends --auth-token)")
	fs.BoolVar(&b.allowRemote, "benchmark-allow-remote", false,
		"allow a --benchmark-target that is not localhost or a loopback address")
}

// checkBenchmark validates the benchmark flags and their combinations
// with the others; from names where a flag's value came from.
func (cfg *config) checkBenchmark(from func(string) string, source map[string]string) error {
	b := &cfg.bench
	onCommandLine := func(name string) bool { return strings.HasPrefix(source[name], "--") }
	if !b.only {
		for _, name := range benchFlags {
			if onCommandLine(name) {
				return usagef("--%s needs --benchmark-only", name)
			}
		}
		if cfg.engine == "both" {
			return usagef("%s: both is only for --benchmark-only (a server runs one engine)", from("engine"))
		}
		return nil
	}
	level, err := bench.ParseLevel(b.stress)
	if b.stress == "" {
		level, err = bench.ParseLevel("light")
	}
	if err != nil {
		return usagef("%s: %v", from("benchmark-stress"), err)
	}
	b.level = level
	if b.target != "" {
		u, err := bench.ParseTarget(b.target, b.allowRemote)
		if err != nil {
			return usagef("%s: %v", from("benchmark-target"), err)
		}
		b.targetURL = u
		for _, name := range []string{"engine", "sync", "sync-interval", "cache-size"} {
			if onCommandLine(name) {
				return usagef("--%s does not apply with --benchmark-target: the server's own setting does", name)
			}
		}
	} else if b.allowRemote {
		return usagef("--benchmark-allow-remote needs --benchmark-target")
	}
	if cfg.engine == "both" && b.targetURL == nil && !storage.RustAvailable {
		return usagef("%s: both needs the rust engine, and the rust engine is not in this build "+
			"(build with -tags rust, e.g. make build-rust); use --engine memory to benchmark the memory engine alone", from("engine"))
	}
	if b.output != "" {
		if err := bench.CheckOutputPath(b.output); err != nil {
			return usagef("%s: %v", from("benchmark-output"), err)
		}
	}
	return nil
}

// runBenchmark runs the suite the flags describe and returns the exit
// code: 0 when every test passed, exitTargetsMissed when one missed a
// target, 1 when the suite could not run to the end.
func runBenchmark(ctx context.Context, stopSignals func(), cfg config, stdout, stderr io.Writer) int {
	// After the first Ctrl-C the suite stops and cleans up; a second one
	// kills the process at once.
	go func() { <-ctx.Done(); stopSignals() }()
	opts := bench.Options{
		Level:     cfg.bench.level,
		Target:    cfg.bench.targetURL,
		AuthToken: cfg.authToken,
		Out:       stdout,
		Version:   version,
	}
	if opts.Target == nil {
		opts.Engines = []string{cfg.engine}
		if cfg.engine == "both" {
			opts.Engines = []string{"rust", "memory"}
		}
		opts.Config = storage.DefaultConfig()
		opts.Config.Sync = storage.SyncPolicy(cfg.sync)
		opts.Config.SyncInterval = cfg.syncInterval
		opts.Config.CacheSize = cfg.cacheSize
		opts.Config.SegmentSize = cfg.segmentSize
		opts.Config.NoMapReads = !cfg.mapReads
		opts.Config.MaxValueSize = int(cfg.maxValueSize)
	}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opts.Progress = stdout
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "mantisdb: benchmark interrupted")
		} else {
			fmt.Fprintf(stderr, "mantisdb: benchmark: %v\n", err)
		}
		return 1
	}
	if cfg.bench.output != "" {
		if err := rep.WriteFile(cfg.bench.output); err != nil {
			fmt.Fprintf(stderr, "mantisdb: benchmark: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "Results written to %s\n", cfg.bench.output)
	}
	if !rep.Pass {
		return exitTargetsMissed
	}
	return 0
}

// levelFlag is --benchmark-stress: a level name, light when unset.
type levelFlag struct{ p *string }

func (v *levelFlag) String() string {
	if v == nil || v.p == nil || *v.p == "" {
		return "light"
	}
	return *v.p
}

func (v *levelFlag) Set(s string) error {
	l, err := bench.ParseLevel(s)
	if err != nil {
		return err
	}
	*v.p = l.Name
	return nil
}

// Type names the value in --help.
func (v *levelFlag) Type() string { return strings.Join(bench.LevelNames(), "|") }
