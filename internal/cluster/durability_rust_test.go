//go:build rust

package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// ackedWrites runs writers concurrent writers, each putting count unique
// keys through the nodes in turn (followers forward to the leader), and
// returns the acknowledged key/value pairs. A write without an answer
// (an error) is left out: only acknowledged writes must survive.
func ackedWrites(t *testing.T, c *testCluster, phase string, writers, count int) map[string]string {
	t.Helper()
	var mu sync.Mutex
	acked := make(map[string]string)
	var wg sync.WaitGroup
	nodes := c.live()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range count {
				n := nodes[(w+i)%len(nodes)]
				k := fmt.Sprintf("%s/w%d/%04d", phase, w, i)
				v := fmt.Sprintf("%s-%d-%d", phase, w, i)
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				err := n.e.Put(ctx, k, v)
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(acked) < writers*count/2 {
		t.Fatalf("%s: only %d of %d writes acknowledged", phase, len(acked), writers*count)
	}
	return acked
}

// quiesce waits until every live node applied the leader's last entry.
func quiesce(t *testing.T, c *testCluster) uint64 {
	t.Helper()
	leader := c.waitLeader()
	if err := leader.e.raft.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	target := leader.e.fsm.applied.Load()
	for _, n := range c.live() {
		eventually(t, n.id+" applies up to the leader", func() error {
			if got := n.e.fsm.applied.Load(); got < target {
				return fmt.Errorf("applied %d < %d", got, target)
			}
			return nil
		})
	}
	return target
}

// engineAsSynced copies node n's engine as it is now into a new directory:
// the state a machine crash would leave if the engine had last been
// synced at this point (Apply does not sync it). Called with no writes in
// flight, so the copy holds exactly the applied entries.
func engineAsSynced(t *testing.T, n *testNode) (dir string, index uint64) {
	t.Helper()
	n.e.fsm.mu.RLock()
	defer n.e.fsm.mu.RUnlock()
	cp, ok := n.e.fsm.local.(storage.Checkpointer)
	if !ok {
		t.Fatalf("%s: the rust engine is not a Checkpointer", n.id)
	}
	dir = filepath.Join(t.TempDir(), n.id+"-engine")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	index = n.e.fsm.applied.Load()
	if err := cp.Checkpoint(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	return dir, index
}

// replaceEngine puts dir (or nothing, if dir is "") in place of node n's
// stopped engine directory: the engine lost every write after dir's state.
func replaceEngine(t *testing.T, n *testNode, dir string) {
	t.Helper()
	live := filepath.Join(n.dir, engineSubdir)
	if err := os.RemoveAll(live); err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		return
	}
	if err := os.Rename(dir, live); err != nil {
		t.Fatal(err)
	}
}

// Apply does not fsync the engine: the raft log is the durability point.
// This test takes that at its word. Every node of a 3-node cluster stops,
// and each loses what its engine held after some point, as a machine crash
// could do to writes that were never synced: n1 goes back to an old state
// (from before raft's snapshots and log compaction moved past it), n2 loses
// its engine entirely, n3 goes back to a state after the last compaction.
// After a restart every acknowledged write is on every node.
func TestRustUnsyncedEngineLossRecoveredFromRaft(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Engine = "rust"
		cfg.EngineConfig.Sync = storage.SyncAlways // what a server runs with; the cluster overrides it for the engine
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 16
		cfg.SnapshotInterval = 100 * time.Millisecond
	})
	acked := ackedWrites(t, c, "a", 8, 40)
	quiesce(t, c)
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	oldDir, oldIndex := engineAsSynced(t, n1)

	// Enough entries for snapshots and compaction past n1's old state.
	for k, v := range ackedWrites(t, c, "b", 8, 60) {
		acked[k] = v
	}
	quiesce(t, c)
	for _, n := range c.nodes {
		if err := n.e.raft.Snapshot().Error(); err != nil {
			t.Fatalf("%s snapshot: %v", n.id, err)
		}
	}
	first, err := n1.e.bolt.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= oldIndex+1 {
		t.Fatalf("n1's log starts at %d: not compacted past its old engine state %d", first, oldIndex)
	}
	if n1.e.fsm.snapshotSyncs.Load() == 0 {
		t.Fatal("n1 took snapshots without syncing its engine")
	}
	midDir, midIndex := engineAsSynced(t, n3)
	// Entries after n3's copy that only the raft log holds.
	for k, v := range ackedWrites(t, c, "c", 4, 10) {
		acked[k] = v
	}
	// Overwrites of keys written before the older copies: the newest
	// acknowledged value must win after the replay.
	for i := range 20 {
		k := fmt.Sprintf("a/w0/%04d", i)
		if _, ok := acked[k]; !ok {
			continue
		}
		mustPut(t, c.nodes[i%3].e, k, "overwritten")
		acked[k] = "overwritten"
	}
	last := quiesce(t, c)
	if last <= midIndex {
		t.Fatalf("no entries after n3's copy at %d", midIndex)
	}

	for _, n := range c.nodes {
		if err := n.e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	replaceEngine(t, n1, oldDir)
	replaceEngine(t, n2, "")
	replaceEngine(t, n3, midDir)
	for _, n := range c.nodes {
		c.start(n, false)
	}
	if got := n1.e.fsm.applied.Load(); got != oldIndex && n1.e.fsm.restores.Load() == 0 {
		t.Fatalf("n1 restarted at applied index %d, want its old engine's %d or a snapshot install", got, oldIndex)
	}
	leader := c.waitLeader()
	eventually(t, "every node applies the last entry", func() error {
		for _, n := range c.nodes {
			if got := n.e.fsm.applied.Load(); got < last {
				return fmt.Errorf("%s applied %d < %d", n.id, got, last)
			}
		}
		return nil
	})
	// n1's old state was compacted out of every log: it came back by
	// snapshot; n2 had nothing.
	for _, n := range []*testNode{n1, n2} {
		if n.e.fsm.restores.Load() == 0 {
			t.Fatalf("%s recovered without a snapshot install", n.id)
		}
	}
	lost := 0
	for _, n := range c.nodes {
		ctx := WithConsistency(t.Context(), Stale)
		for k, want := range acked {
			got, err := n.e.Get(ctx, k)
			if err != nil || got != want {
				if lost < 10 {
					t.Errorf("%s: %q = %q, %v; want %q", n.id, k, got, err, want)
				}
				lost++
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged writes missing after the restart (of %d keys on 3 nodes)", lost, len(acked))
	}
	// The cluster still takes writes, and a linearizable read sees them.
	mustPut(t, leader.e, "after", "1")
	wantGet(t, t.Context(), n2.e, "after", "1")
	if _, err := n3.e.Get(t.Context(), "never-written"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of an unwritten key: %v", err)
	}
}
