package clusterfault

import (
	"bytes"
	"net"
	"testing"

	"github.com/mantisdb/mantisdb/internal/serverbuild"
	"github.com/mantisdb/mantisdb/storage"
)

// TestShortRun is the harness's short run in `make test`: ten fault cycles
// on three server processes, clients over HTTP and the Redis protocol, the
// history checked, and the read
// demonstrations (the checker must reject a stale read).
func TestShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes for about a minute")
	}
	if ln, err := net.Listen("tcp", nodeIP(1)+":0"); err != nil {
		t.Skipf("the harness gives each node its own loopback address, and %s is not available here (Linux has all of 127/8): %v", nodeIP(1), err)
	} else {
		ln.Close()
	}
	bin := serverbuild.Binary(t)
	var log bytes.Buffer
	rep, err := Run(t.Context(), Config{Bin: bin, Engine: storage.DefaultEngine, Cycles: 10, Dir: t.TempDir(), Log: &log, Demo: true})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	t.Log(rep.Summary())
	if !rep.Passed() {
		t.Fatalf("the run failed:\n%s\nserver log:\n%s", rep.Summary(), log.String())
	}
	if rep.Cycles != 10 || rep.Ops < 100 || rep.Keys < 10 {
		t.Fatalf("the run did too little: %d cycles, %d operations on %d keys", rep.Cycles, rep.Ops, rep.Keys)
	}
	if rep.ByProtocol["http"] == 0 || rep.ByProtocol["resp"] == 0 {
		t.Fatalf("the clients did not use both protocols: %v", rep.ByProtocol)
	}
}
