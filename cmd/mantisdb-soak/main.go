// Command mantisdb-soak runs MantisDB's soak test: heavy mixed load over
// HTTP for a long time (10 minutes by default), a line of throughput,
// latency and server memory every interval, abusive clients (slow
// headers, trickled bodies, oversized requests) for a window in the
// middle, then a verdict. By default it starts ./mantisdb-rust on
// 127.0.0.1 with a temporary data directory; --url soaks a running server
// instead. docs/operations/soak.md describes the method.
//
// Exit codes: 0 when every check passed, 3 when one failed, 1 when the
// soak could not run, 2 for a bad flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mantisdb/mantisdb/internal/bench"
	"github.com/mantisdb/mantisdb/internal/soak"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mantisdb-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg         soak.Config
		target      string
		allowRemote bool
		serverArgs  string
		jsonPath    string
		csvPath     string
		warmupFrac  float64
		attackAt    float64
		rssSlackMiB int64
		rssSpikeMiB int64
	)
	fs.StringVar(&cfg.Server, "server", "./mantisdb-rust", "server binary to start on 127.0.0.1 with a temporary data directory")
	fs.StringVar(&serverArgs, "server-args", "", "extra flags for the started server, space-separated")
	fs.StringVar(&cfg.TempDir, "tmp", "", "where the started server's data directory goes (default: the system temporary directory)")
	fs.StringVar(&target, "url", "", "soak a running server at this URL instead of starting one (loopback only unless --allow-remote)")
	fs.BoolVar(&allowRemote, "allow-remote", false, "allow a --url that is not a loopback address")
	fs.StringVar(&cfg.Token, "token", os.Getenv("MANTISDB_AUTH_TOKEN"), "bearer token of --url (default $MANTISDB_AUTH_TOKEN)")
	fs.IntVar(&cfg.PID, "pid", 0, "process id of the --url server, to read its RSS and descriptors from /proc (default: its /metrics)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long the load runs")
	fs.DurationVar(&cfg.Interval, "interval", 10*time.Second, "period of the report lines")
	fs.Float64Var(&warmupFrac, "warmup", 0.2, "share of the run during which new keys are created (0..1)")
	fs.IntVar(&cfg.Clients, "clients", 64, "concurrent load clients, one connection each")
	fs.Int64Var(&cfg.Keys, "keys", 200_000, "most keys the warm-up creates")
	fs.IntVar(&cfg.ValueMin, "value-min", 100, "shortest value written, bytes")
	fs.IntVar(&cfg.ValueMax, "value-max", 2000, "longest value written, bytes")
	fs.Float64Var(&attackAt, "attack-at", 0.35, "start of the abusive clients' window, as a share of the run")
	fs.DurationVar(&cfg.AttackFor, "attack-for", time.Minute, "length of the abusive clients' window; 0 runs none")
	fs.IntVar(&cfg.Attack.SlowHeaders, "slow-headers", 200, "connections sending headers a byte at a time")
	fs.IntVar(&cfg.Attack.SlowBodies, "slow-bodies", 64, "connections trickling a request body")
	fs.IntVar(&cfg.Attack.Pregrow, "pregrow", 64, "connections declaring a body at the value limit and sending nothing")
	fs.Int64Var(&cfg.Attack.MaxValueSize, "max-value-size", 64<<20, "the server's --max-value-size, in bytes")
	fs.IntVar(&cfg.Attack.MaxBatchOps, "max-batch-ops", 10000, "the server's --max-batch-ops")
	fs.IntVar(&cfg.Attack.MaxHeaderBytes, "max-header-bytes", 1<<20, "the server's header limit, in bytes")
	fs.DurationVar(&cfg.Attack.Cutoff, "cutoff", 10*time.Second, "longest the server may keep a slow connection open")
	fs.Float64Var(&cfg.RSSFactor, "rss-factor", 1.10,
		"memory rules: late median RSS <= pre-attack median × this + --rss-slack; every RSS sample <= that median × this + --rss-spike")
	fs.Int64Var(&rssSlackMiB, "rss-slack", 32, "memory rule slack of the late median, MiB")
	fs.Int64Var(&rssSpikeMiB, "rss-spike", 256, "memory rule allowance for transient peaks (compaction holds whole segments), MiB")
	fs.DurationVar(&cfg.MaxProbeLatency, "max-probe-latency", 2*time.Second, "slowest request on a fresh connection allowed during the attack")
	fs.StringVar(&jsonPath, "json", "", "write the whole result (samples, verdict) as JSON to this file")
	fs.StringVar(&csvPath, "csv", "", "write the interval samples as CSV to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mantisdb-soak: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if warmupFrac <= 0 || warmupFrac >= 1 || attackAt <= 0 || attackAt >= 1 {
		fmt.Fprintln(stderr, "mantisdb-soak: --warmup and --attack-at are shares of the run, between 0 and 1")
		return 2
	}
	cfg.Warmup = time.Duration(float64(cfg.Duration) * warmupFrac).Round(time.Second)
	cfg.AttackAt = time.Duration(float64(cfg.Duration) * attackAt).Round(time.Second)
	cfg.RSSSlack = rssSlackMiB << 20
	cfg.RSSSpike = rssSpikeMiB << 20
	cfg.ServerArgs = strings.Fields(serverArgs)
	cfg.Out = stdout
	if target != "" {
		u, err := bench.ParseTarget(target, allowRemote)
		if err != nil {
			fmt.Fprintf(stderr, "mantisdb-soak: --url %v\n", err)
			return 2
		}
		cfg.Target = u
	} else if _, err := os.Stat(cfg.Server); err != nil {
		fmt.Fprintf(stderr, "mantisdb-soak: --server %s: %v (build it with make build-rust)\n", cfg.Server, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mantisdb-soak: %v\n", err)
		return 1
	}
	if err := writeOutputs(res, jsonPath, csvPath); err != nil {
		fmt.Fprintf(stderr, "mantisdb-soak: %v\n", err)
		return 1
	}
	if !res.Pass {
		return 3
	}
	return 0
}

func writeOutputs(res *soak.Result, jsonPath, csvPath string) error {
	if jsonPath != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if csvPath != "" {
		f, err := os.Create(csvPath)
		if err != nil {
			return err
		}
		if err := res.WriteCSV(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}
