// Package clustertest starts clusters of cluster.Engine nodes over
// loopback TCP for tests in other packages (the storage conformance suite,
// the HTTP API).
package clustertest

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/storage"
)

// Cluster is a running test cluster; its nodes close at the test's end.
type Cluster struct {
	Nodes []*cluster.Engine
}

// Start runs n nodes on 127.0.0.1 with the named local engine and
// configuration (DataDir is replaced by a directory per node under
// tb.TempDir()), waits for a leader that every node knows, and registers
// their Close with tb.Cleanup.
func Start(tb testing.TB, n int, engine string, cfg storage.Config) *Cluster {
	tb.Helper()
	c := &Cluster{}
	root := tb.TempDir()
	tb.Cleanup(func() {
		for _, e := range c.Nodes {
			_ = e.Close()
		}
	})
	for i := range n {
		ncfg := cluster.Config{
			NodeID:       fmt.Sprintf("n%d", i+1),
			RaftAddr:     "127.0.0.1:0",
			Bootstrap:    i == 0,
			Engine:       engine,
			EngineConfig: cfg,
			// Raft's own, patient timing: a test machine running the race
			// detector beside other builds must not see elections that
			// nothing caused.
			HeartbeatTimeout:   time.Second,
			ElectionTimeout:    time.Second,
			LeaderLeaseTimeout: time.Second,
		}
		if i > 0 {
			ncfg.Join = c.Nodes[0].RaftAddr()
		}
		e, err := cluster.New(ncfg)
		if err != nil {
			tb.Fatalf("cluster.New(%s): %v", ncfg.NodeID, err)
		}
		if err := e.Init(filepath.Join(root, ncfg.NodeID)); err != nil {
			tb.Fatalf("Init(%s): %v", ncfg.NodeID, err)
		}
		c.Nodes = append(c.Nodes, e)
		if i == 0 {
			c.Leader(tb)
		}
	}
	c.Leader(tb)
	return c
}

// Leader waits up to 15 s for one leader that every node names, and returns it.
func (c *Cluster) Leader(tb testing.TB) *cluster.Engine {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var leader *cluster.Engine
		for _, e := range c.Nodes {
			if e.IsLeader() {
				leader = e
			}
		}
		agreed := leader != nil
		for _, e := range c.Nodes {
			agreed = agreed && e.LeaderID() == leader.NodeID()
		}
		if agreed {
			return leader
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatal("no leader every node agrees on within 15s")
	return nil
}

// Follower returns a node that is not the leader.
func (c *Cluster) Follower(tb testing.TB) *cluster.Engine {
	tb.Helper()
	leader := c.Leader(tb)
	for _, e := range c.Nodes {
		if e != leader {
			return e
		}
	}
	tb.Fatal("a cluster of one has no follower")
	return nil
}
