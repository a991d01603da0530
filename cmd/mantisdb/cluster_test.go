package main

import (
	"errors"
	"strings"
	"testing"
)

func TestClusterFlags(t *testing.T) {
	cfg, err := parseConfig([]string{"--node-id", "n2", "--join", "127.0.0.1:7001", "--raft-addr", "127.0.0.1:7002"},
		env(map[string]string{"MANTISDB_READ_CONSISTENCY": "stale"}))
	if err != nil {
		t.Fatal(err)
	}
	want := clusterConfig{nodeID: "n2", raftAddr: "127.0.0.1:7002", join: "127.0.0.1:7001", consistency: "stale"}
	if cfg.cluster != want {
		t.Fatalf("cluster config %+v, want %+v", cfg.cluster, want)
	}
	cfg, err = parseConfig(nil, env(map[string]string{"MANTISDB_NODE_ID": "n1", "MANTISDB_BOOTSTRAP": "true"}))
	if err != nil || !cfg.cluster.bootstrap || cfg.cluster.nodeID != "n1" {
		t.Fatalf("from the environment: %+v, %v", cfg.cluster, err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bootstrap"}, "--bootstrap needs --node-id"},
		{[]string{"--join", "127.0.0.1:1"}, "--join needs --node-id"},
		{[]string{"--node-id", "a", "--bootstrap", "--join", "127.0.0.1:1"}, "exclude each other"},
		{[]string{"--node-id", "a b"}, "no spaces"},
		{[]string{"--node-id", "a", "--join", "nohost"}, "not host:port"},
		{[]string{"--node-id", "a", "--read-consistency", "eventual"}, "--read-consistency"},
	} {
		_, err := parseConfig(c.args, env(nil))
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error containing %q", c.args, err, c.want)
		}
	}
}
