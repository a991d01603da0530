//go:build rust

package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// On the durable engine a restart keeps the engine's state: the fsm starts
// at the stored applied index and raft's replay of older entries is skipped.
func TestRustRestartKeepsAppliedIndex(t *testing.T) {
	c := testRestartEveryNode(t, "rust")
	for _, n := range c.nodes {
		if n.e.fsm.restores.Load() != 0 {
			t.Fatalf("%s installed a snapshot on restart; its engine was durable", n.id)
		}
	}
	// Every node catches up with the leader, then all stop.
	leader := c.waitLeader()
	for _, n := range c.nodes {
		eventually(t, "apply", func() error {
			if n.e.fsm.applied.Load() < leader.e.fsm.applied.Load() {
				return fmt.Errorf("%s behind", n.id)
			}
			return nil
		})
	}
	before := map[string]uint64{}
	for _, n := range c.nodes {
		before[n.id] = n.e.fsm.applied.Load()
		if err := n.e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		c.start(n, false)
		if got := n.e.fsm.applied.Load(); got != before[n.id] {
			t.Fatalf("%s starts at applied index %d, want the stored %d", n.id, got, before[n.id])
		}
	}
	c.waitLeader()
	for _, n := range c.nodes {
		wantGet(t, t.Context(), n.e, "k07", "7")
	}
}

// The snapshot install on the durable engine swaps engine directories; the
// result survives another restart and leaves no staging or old directory.
func TestRustSnapshotInstallSwapsDirectories(t *testing.T) {
	c := testSnapshotInstall(t, "rust")
	var lag *testNode
	for _, n := range c.nodes {
		if n.e.fsm.restores.Load() == 1 {
			lag = n
		}
	}
	// The install was the leader's engine checkpoint, streamed as an archive.
	if lag.e.fsm.archiveRestores.Load() != 1 {
		t.Fatalf("the lagging node installed %d checkpoint archives, want 1", lag.e.fsm.archiveRestores.Load())
	}
	leader := c.waitLeader()
	if leader.e.fsm.checkpoints.Load() == 0 {
		t.Fatal("the leader took no checkpoint for its snapshots")
	}
	for _, d := range []string{"engine.staging", "engine.old", "engine.unpack"} {
		if _, err := os.Stat(filepath.Join(lag.dir, d)); !os.IsNotExist(err) {
			t.Fatalf("%s left after the install: %v", d, err)
		}
	}
	// Released snapshots leave no checkpoint directory (one may be in use
	// by a snapshot raft is taking right now, so allow for it briefly).
	eventually(t, "checkpoint directories removed", func() error {
		left, _ := filepath.Glob(filepath.Join(leader.dir, "engine.checkpoint-*"))
		if len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
	if err := lag.e.Close(); err != nil {
		t.Fatal(err)
	}
	c.start(lag, false)
	if lag.e.fsm.applied.Load() == 0 {
		t.Fatal("the installed engine lost its applied index on reopen")
	}
	wantGet(t, t.Context(), lag.e, "k123", "123")
}
