package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/storage"
)

// clusterConfig holds the flags that make the server a cluster member.
// Without --node-id the server is one node exactly as before.
type clusterConfig struct {
	nodeID      string
	raftAddr    string
	advertise   string
	bootstrap   bool
	join        string
	consistency string
}

func addClusterFlags(fs *flag.FlagSet, c *clusterConfig) {
	*c = clusterConfig{raftAddr: "127.0.0.1:7000", consistency: string(cluster.Linearizable)}
	fs.StringVar(&c.nodeID, "node-id", "",
		"run as a cluster member with this permanent id (docs/operations/cluster.md); empty: a single node")
	fs.StringVar(&c.raftAddr, "raft-addr", c.raftAddr, "host:port for raft and cluster traffic between members")
	fs.StringVar(&c.advertise, "raft-advertise", "", "host:port other members dial, when --raft-addr binds a wildcard (default: --raft-addr)")
	fs.BoolVar(&c.bootstrap, "bootstrap", false, "start a new cluster with this node as its first member (once, on the first node)")
	fs.StringVar(&c.join, "join", "", "raft address of any member to join on first start (the other nodes)")
	fs.Var(&choiceValue{&c.consistency, []string{"linearizable", "leader", "stale"}}, "read-consistency",
		"default read level of a cluster member: linearizable (sees every acknowledged write), leader, or stale (this node's data at once); per request: ?consistency=")
}

// checkCluster validates the cluster flags together.
func (cfg *config) checkCluster(from func(string) string) error {
	c := cfg.cluster
	if c.nodeID == "" {
		for _, name := range []string{"bootstrap", "join", "raft-advertise"} {
			if from(name) != "--"+name+" (default)" {
				return usagef("%s needs --node-id: it is a cluster setting", from(name))
			}
		}
		return nil
	}
	if c.bootstrap && c.join != "" {
		return usagef("--bootstrap and --join exclude each other: bootstrap the first node, join the others to it")
	}
	if cfg.engine == "both" {
		return usagef("%s: a cluster member runs one engine, rust or memory", from("engine"))
	}
	if strings.ContainsAny(c.nodeID, " \t\n/") {
		return usagef("%s: a node id has no spaces or slashes", from("node-id"))
	}
	for name, addr := range map[string]string{"raft-addr": c.raftAddr, "raft-advertise": c.advertise, "join": c.join} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return usagef("%s: %q is not host:port: %v", from(name), addr, err)
		}
	}
	return nil
}

// openCluster starts this server's cluster member on the data directory:
// engine/, raft/ and snapshots/ below it.
func openCluster(cfg config, scfg storage.Config, log *slog.Logger) (storage.StorageEngine, error) {
	c := cfg.cluster
	e, err := cluster.New(cluster.Config{
		NodeID:        c.nodeID,
		RaftAddr:      c.raftAddr,
		AdvertiseAddr: c.advertise,
		Bootstrap:     c.bootstrap,
		Join:          c.join,
		Engine:        cfg.engine,
		EngineConfig:  scfg,
		Consistency:   cluster.Consistency(c.consistency),
		Logger:        log,
	})
	if err != nil {
		return nil, err
	}
	if err := e.Init(cfg.dataDir); err != nil {
		return nil, fmt.Errorf("starting cluster member %s in %s: %w", c.nodeID, cfg.dataDir, err)
	}
	log.Info("cluster member started", "node_id", c.nodeID, "raft_addr", e.RaftAddr(), "bootstrap", c.bootstrap, "join", c.join,
		"read_consistency", c.consistency)
	return e, nil
}

// nodeStopped is closed when a cluster member stopped itself after an
// engine failure; never for a single node.
func nodeStopped(engine storage.StorageEngine) (<-chan struct{}, func() error) {
	if e, ok := engine.(*cluster.Engine); ok {
		return e.Stopped(), e.StopError
	}
	return nil, func() error { return nil }
}
