// Command mantisdb is the MantisDB key-value server: an HTTP/JSON API (see
// docs/api/openapi.yaml) over the Rust storage engine, or the in-memory
// engine in builds without Rust. Run it with --help for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/mantisdb/mantisdb/storage"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if isToolCommand(args) {
		return runTool(args, toolIO{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: getenv})
	}
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "mantisdb: %v\nRun 'mantisdb --help' for the flags.\n", err)
		return 2
	}
	if cfg.showVersion {
		printVersion(stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.bench.only {
		return runBenchmark(ctx, stop, cfg, stdout, stderr)
	}
	log := newLogger(cfg, stderr)
	if err := serve(ctx, stop, cfg, log); err != nil {
		log.Error("mantisdb stopped with an error", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func printVersion(w io.Writer) {
	rust := "not in this build (build with -tags rust)"
	if storage.RustAvailable {
		rust = "available"
	}
	fmt.Fprintf(w, "mantisdb %s\ngo: %s %s/%s\nengines: memory available, rust %s; default %s\n",
		version, runtime.Version(), runtime.GOOS, runtime.GOARCH, rust, storage.DefaultEngine)
}
