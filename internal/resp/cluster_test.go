package resp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/internal/cluster/clustertest"
	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// startOn serves RESP over a cluster node's engine.
func startOn(t *testing.T, node *cluster.Engine) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	store := kv.New(node)
	srv := Start(ln, Config{Store: store, Version: "test", Sync: "always"})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return &testServer{srv: srv, engine: node, store: store, addr: ln.Addr().String()}
}

func TestClusterMember(t *testing.T) {
	c := clustertest.Start(t, 3, "memory", storage.DefaultConfig())
	leader, follower := c.Leader(t), c.Follower(t)
	ctx := t.Context()
	onFollower := startOn(t, follower).client(t, 3)
	onLeader := startOn(t, leader).client(t, 2)

	// A write on a follower is forwarded to the leader; a read on the
	// leader sees it, and so does WATCH/EXEC's version check.
	if err := onFollower.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on a follower: %v", err)
	}
	if v, err := onLeader.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET on the leader = %q, %v", v, err)
	}
	if err := onFollower.Set(ctx, "t", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if ttl, err := onLeader.TTL(ctx, "t").Result(); err != nil || ttl <= 59*time.Minute {
		t.Fatalf("TTL on the leader = %v, %v", ttl, err)
	}
	err := onFollower.Watch(ctx, func(tx *redis.Tx) error {
		if err := onLeader.Set(ctx, "k", "changed", 0).Err(); err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "k", "from-exec", 0)
			return nil
		})
		return err
	}, "k")
	if err != redis.TxFailedErr {
		t.Fatalf("EXEC after another node wrote a watched key: %v, want a failed transaction", err)
	}
	if v, _ := onFollower.Get(ctx, "k").Result(); v != "changed" {
		t.Fatalf("k = %q after the failed EXEC", v)
	}

	// INFO replication reports the raft role and the cluster's figures.
	for _, x := range []struct {
		c    *redis.Client
		role string
		id   string
	}{{onLeader, "role:master", leader.NodeID()}, {onFollower, "role:slave", follower.NodeID()}} {
		info, err := x.c.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{x.role, "mantisdb_cluster_node_id:" + x.id, "mantisdb_cluster_leader_id:" + leader.NodeID(), "mantisdb_cluster_members:3"} {
			if !strings.Contains(info, want) {
				t.Fatalf("INFO replication lacks %q:\n%s", want, info)
			}
		}
		// The raft log, forwarding, session and election counters follow,
		// and the writes above reached every node's raft log.
		var f cluster.Figures
		for _, c := range f.InfoFields() {
			if !strings.Contains(info, "\r\n"+c.Name+":") {
				t.Fatalf("INFO replication lacks %s:\n%s", c.Name, info)
			}
		}
		if strings.Contains(info, "mantisdb_cluster_log_appends:0\r\n") {
			t.Fatalf("INFO replication counts no raft log append after writes:\n%s", info)
		}
	}
}
