// Command mantisdb-crashtest is the server crash harness: it starts a
// MantisDB server binary with --sync always, drives concurrent writers
// over HTTP or the Redis protocol (-protocol resp), kills the server with SIGKILL at random moments, restarts it
// on the same data and checks that every acknowledged write is there with
// its value and that no atomic batch is torn. See
// docs/operations/crash-harness.md.
//
// Exit codes: 0 when every check passed, 1 when one failed or the run
// could not go on (the data directory and server log are kept), 2 for a
// bad flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mantisdb/mantisdb/internal/crashtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg := crashtest.DefaultConfig()
	fs := flag.NewFlagSet("mantisdb-crashtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("server", "./mantisdb-rust", "server binary to test (built with the Rust engine: make build-rust)")
	dir := fs.String("dir", "", "work directory for the data and server.log; must be empty or missing, and is kept (default: a new temporary directory, removed when the run passes)")
	keep := fs.Bool("keep", false, "keep the temporary work directory even when the run passes")
	fs.IntVar(&cfg.Cycles, "cycles", cfg.Cycles, "kill-restart-verify cycles")
	fs.IntVar(&cfg.Writers, "writers", cfg.Writers, "concurrent writers")
	fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "size of the key space (at least 8 per writer)")
	fs.DurationVar(&cfg.MinLoad, "min-load", cfg.MinLoad, "shortest load before a kill")
	fs.DurationVar(&cfg.MaxLoad, "max-load", cfg.MaxLoad, "longest load before a kill")
	fs.Float64Var(&cfg.LongLoads, "long-loads", cfg.LongLoads, "fraction of cycles whose load lasts -long-load to twice that (past the server's first compaction pass)")
	fs.DurationVar(&cfg.LongLoad, "long-load", cfg.LongLoad, "shortest long load")
	fs.Float64Var(&cfg.StartupKills, "startup-kills", cfg.StartupKills, "fraction of restarts first killed during start-up (recovery)")
	fs.StringVar(&cfg.Protocol, "protocol", crashtest.ProtocolHTTP, "what the writers speak: http (puts, deletes, atomic batches) or resp (SET, DEL, MSET over the Redis protocol, half of them pipelined)")
	fs.IntVar(&cfg.Progress, "progress", cfg.Progress, "print a progress line every N cycles (0: none)")
	serverArgs := fs.String("server-args", "", "more server flags, space-separated, after the harness's own (--sync always ...), which they can override")
	seed := fs.Uint64("seed", 0, "seed of the operations, sizes and kill moments (default: from the clock; printed)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mantisdb-crashtest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	cfg.Out = stdout
	if err := cfg.Check(); err != nil {
		fmt.Fprintf(stderr, "mantisdb-crashtest: %v\n", err)
		return 2
	}
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(stderr, "mantisdb-crashtest: server binary: %v (build it with make build-rust, or pass -server)\n", err)
		return 2
	}

	work, temp, err := workDir(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "mantisdb-crashtest: %v\n", err)
		return 2
	}
	logFile, err := os.Create(filepath.Join(work, "server.log"))
	if err != nil {
		fmt.Fprintf(stderr, "mantisdb-crashtest: %v\n", err)
		return 1
	}
	defer logFile.Close()
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintf(stderr, "mantisdb-crashtest: %v\n", err)
		return 1
	}
	dataDir := filepath.Join(work, "data")
	server := strings.TrimSpace(*bin + " " + *serverArgs)
	fmt.Fprintf(stdout, "crash-test: server %s, data %s, %d cycles, %d writers over %s, %d keys, kill after %v-%v of load (%v of cycles: %v-%v), seed %d\n",
		server, dataDir, cfg.Cycles, cfg.Writers, cfg.Protocol, cfg.Keys, cfg.MinLoad, cfg.MaxLoad, cfg.LongLoads, cfg.LongLoad, 2*cfg.LongLoad, cfg.Seed)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p := &crashtest.Process{Bin: absBin, DataDir: dataDir, Log: logFile, ExtraArgs: strings.Fields(*serverArgs),
		RESP: cfg.Protocol == crashtest.ProtocolRESP}
	sum, err := crashtest.Run(ctx, cfg, p)
	crashtest.Report(stdout, sum.Violations, 50)
	if err != nil && !errors.Is(err, crashtest.ErrViolations) {
		fmt.Fprintf(stdout, "crash-test: stopped: %v\n", err)
	}
	fmt.Fprintln(stdout, sum.Line())
	if err != nil {
		fmt.Fprintf(stdout, "crash-test: kept %s (data/ and server.log) for inspection\n", work)
		return 1
	}
	if temp && !*keep {
		logFile.Close()
		if err := os.RemoveAll(work); err != nil {
			fmt.Fprintf(stderr, "mantisdb-crashtest: removing %s: %v\n", work, err)
		}
	}
	return 0
}

// workDir creates the work directory: dir when given (missing or empty),
// else a new temporary one (temp true).
func workDir(dir string) (path string, temp bool, err error) {
	if dir == "" {
		path, err = os.MkdirTemp("", "mantisdb-crashtest-")
		return path, true, err
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dir, false, os.MkdirAll(dir, 0o700)
	case err != nil:
		return "", false, fmt.Errorf("-dir %s: %w", dir, err)
	case len(entries) > 0:
		return "", false, fmt.Errorf("-dir %s is not empty: the harness must start from empty data", dir)
	}
	return dir, false, nil
}
