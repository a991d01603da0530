//go:build rust

package crashtest

import (
	"strings"
	"testing"
)

// TestServerCrashCyclesRESP is the short run of the harness over the Redis
// protocol against the real server with the Rust engine and --sync always:
// SET, DEL and MSET, alone and in pipelines, SIGKILL mid-load, and every
// +OK (and DEL count) the writers received must be there after the
// restart, with every in-flight MSET whole or absent. 5 cycles
// (MANTIS_SERVER_RESP_CRASH_CYCLES overrides the count); make crash-test
// runs the long one through cmd/mantisdb-crashtest -protocol resp.
func TestServerCrashCyclesRESP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Protocol = ProtocolRESP
	cfg.Cycles = envCycles(t, "MANTIS_SERVER_RESP_CRASH_CYCLES", 5)
	sum, err := runServer(t, cfg, "--segment-size", "64KiB")
	if err != nil {
		var b strings.Builder
		Report(&b, sum.Violations, 50)
		t.Fatalf("%v\n%s", err, b.String())
	}
	if sum.Cycles != cfg.Cycles || sum.Puts == 0 || sum.Deletes == 0 || sum.Batches == 0 || sum.Pipelined == 0 ||
		sum.InFlight() == 0 || sum.PointReads == 0 {
		t.Fatalf("the run did too little: %s", sum.Line())
	}
}

// TestServerCrashHarnessRESPCatchesSyncNever is the RESP run against a
// server that answers +OK before the write leaves its buffer (--sync
// never): the harness must report lost acknowledged writes, so a pass of
// TestServerCrashCyclesRESP means something.
func TestServerCrashHarnessRESPCatchesSyncNever(t *testing.T) {
	requireSyncNeverLoss(t, ProtocolRESP)
}
