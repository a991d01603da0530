// Command mantisdb-clustertest is the fault harness of MantisDB clusters
// (internal/clusterfault): three server processes on loopback, concurrent
// clients, a nemesis killing, pausing and partitioning nodes, and a
// linearizability check of every history. It exits 0 when the run found
// nothing wrong, 1 when it did, 2 for bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mantisdb/mantisdb/internal/clusterfault"
)

func main() {
	var cfg clusterfault.Config
	var logPath, serverArgs string
	flag.StringVar(&cfg.Bin, "server", "./mantisdb-rust", "server binary")
	flag.StringVar(&cfg.Engine, "engine", "rust", "server engine: rust or memory")
	flag.IntVar(&cfg.Cycles, "cycles", 300, "fault cycles")
	flag.IntVar(&cfg.Clients, "clients", 6, "concurrent clients")
	flag.IntVar(&cfg.KeysPerCycle, "keys", 4, "keys the clients share in each cycle")
	flag.StringVar(&cfg.Protocols, "protocols", "both", "protocols of the clients: both (each operation picks one), http or resp")
	flag.StringVar(&cfg.ReadConsistency, "read-consistency", "linearizable", "consistency of the clients' reads (stale makes the checker fail)")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "seed of the nemesis and clients (0: random)")
	flag.DurationVar(&cfg.CheckTimeout, "check-timeout", 10*time.Minute, "time the linearizability checker may take")
	flag.BoolVar(&cfg.Demo, "demo", true, "after the cycles, show a stale read caught by the checker and linearizable reads refused by a cut-off follower and a deposed leader")
	flag.StringVar(&logPath, "log", "", "file for the servers' output and a line per cycle (default: a temporary file, named at the end)")
	flag.StringVar(&serverArgs, "server-args", "", "extra server flags, space separated")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	cfg.ServerArgs = strings.Fields(serverArgs)
	var logFile *os.File
	var err error
	if logPath == "" {
		logFile, err = os.CreateTemp("", "mantisdb-clustertest-*.log")
	} else {
		logFile, err = os.Create(logPath)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer logFile.Close()
	cfg.Log = logFile
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("cluster-test: %d cycles, %d clients over %s, %s engine, log %s\n", cfg.Cycles, cfg.Clients, cfg.Protocols, cfg.Engine, logFile.Name())
	rep, err := clusterfault.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster-test could not run: %v (log %s)\n", err, logFile.Name())
		os.Exit(1)
	}
	fmt.Print(rep.Summary())
	if !rep.Passed() {
		fmt.Printf("server log: %s\n", logFile.Name())
		os.Exit(1)
	}
}
