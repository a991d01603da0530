//go:build rust

package crashtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/internal/serverbuild"
)

func TestMain(m *testing.M) {
	code := m.Run()
	serverbuild.Remove()
	os.Exit(code)
}

// runServer runs the harness against a fresh build in a new work
// directory, kept when the test fails.
func runServer(t *testing.T, cfg Config, extraArgs ...string) (Summary, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	work, err := os.MkdirTemp("", "mantisdb-crashtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s (data/ and server.log)", work)
		} else {
			_ = os.RemoveAll(work)
		}
	})
	bin := serverbuild.Binary(t)
	log, err := os.Create(filepath.Join(work, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cfg.Seed = uint64(os.Getpid())
	cfg.Progress = 0
	p := &Process{Bin: bin, DataDir: filepath.Join(work, "data"), Log: log, ExtraArgs: extraArgs, RESP: cfg.Protocol == ProtocolRESP}
	sum, err := Run(context.Background(), cfg, p)
	t.Logf("seed %d: %s", cfg.Seed, sum.Line())
	return sum, err
}

// TestServerCrashCycles is the short run of the harness against the real
// server binary with the Rust engine: 10 SIGKILL cycles
// (MANTIS_SERVER_CRASH_CYCLES overrides the count), with 64 KiB segments so
// that compaction runs between the kills. make crash-test runs the long one
// through cmd/mantisdb-crashtest.
func TestServerCrashCycles(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cycles = envCycles(t, "MANTIS_SERVER_CRASH_CYCLES", 10)
	sum, err := runServer(t, cfg, "--segment-size", "64KiB")
	if err != nil {
		var b strings.Builder
		Report(&b, sum.Violations, 50)
		t.Fatalf("%v\n%s", err, b.String())
	}
	// A run that never had a write in flight at a kill, or never sent one
	// kind of operation, proved less than it claims.
	if sum.Cycles != cfg.Cycles || sum.Puts == 0 || sum.Deletes == 0 || sum.Batches == 0 || sum.InFlight() == 0 ||
		sum.Compactions == 0 {
		t.Fatalf("the run did too little: %s", sum.Line())
	}
}

// TestServerCrashHarnessCatchesSyncNever runs the same harness against a
// server that acknowledges writes before they leave its own buffer
// (--sync never keeps up to 10 ms of them in process memory): a SIGKILL
// loses some, and the harness must say so. This is the check that the
// harness can fail against the real server, not only against a model.
func TestServerCrashHarnessCatchesSyncNever(t *testing.T) {
	requireSyncNeverLoss(t, ProtocolHTTP)
}

// envCycles is the cycle count the environment variable name sets, or
// def when it is not set.
func envCycles(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// requireSyncNeverLoss runs 10 cycles over protocol against a server
// started with --sync never, with no kills during start-up, and fails t
// unless the harness reports a lost acknowledged write: one that shows as
// such, or, on a key whose writer had an operation in flight, as a value
// from before the last write.
func requireSyncNeverLoss(t *testing.T, protocol string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Protocol = protocol
	cfg.Cycles = 10
	cfg.StartupKills = 0
	sum, err := runServer(t, cfg, "--sync", "never")
	if !errors.Is(err, ErrViolations) {
		t.Fatalf("no loss found under --sync never in %d cycles: %v", sum.Cycles, err)
	}
	for _, v := range sum.Violations {
		if v.What == "acknowledged write lost" || v.What == "wrong value" ||
			strings.Contains(v.What, "deleted or never written") || strings.Contains(v.What, "neither as before it nor as after it") {
			return
		}
	}
	var b strings.Builder
	Report(&b, sum.Violations, 20)
	t.Fatalf("violations, but none a lost acknowledged write:\n%s", b.String())
}
