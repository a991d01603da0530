package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/internal/cluster/clustertest"
	"github.com/mantisdb/mantisdb/storage"
)

func TestClusterRoutes(t *testing.T) {
	c := clustertest.Start(t, 3, "memory", storage.DefaultConfig())
	follower := c.Follower(t)
	api := newClientOver(t, follower, Options{})

	// A write through a follower's HTTP API is forwarded; reads at every level see it.
	if rec := api.do("PUT", "/api/v1/kv/k", `{"value":"v"}`); rec.Code != http.StatusOK {
		t.Fatalf("PUT through a follower: %d %s", rec.Code, rec.Body)
	}
	for _, q := range []string{"", "?consistency=linearizable", "?consistency=leader"} {
		rec := api.do("GET", "/api/v1/kv/k"+q, "")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"value":"v"`) {
			t.Fatalf("GET%s: %d %s", q, rec.Code, rec.Body)
		}
	}
	if rec := api.do("GET", "/api/v1/kv/k?consistency=eventual", ""); rec.Code != http.StatusBadRequest {
		t.Fatalf("GET with a bad consistency: %d %s", rec.Code, rec.Body)
	}
	if rec := api.do("GET", "/api/v1/kv?prefix=k&consistency=stale&consistency=stale", ""); rec.Code != http.StatusBadRequest {
		t.Fatalf("repeated consistency: %d %s", rec.Code, rec.Body)
	}
	if rec := api.do("GET", "/api/v1/kv?prefix=k&consistency=stale", ""); rec.Code != http.StatusOK {
		t.Fatalf("stale scan: %d %s", rec.Code, rec.Body)
	}

	rec := api.do("GET", "/api/v1/cluster", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/cluster: %d %s", rec.Code, rec.Body)
	}
	var st cluster.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	leader := c.Leader(t)
	if st.ID != follower.NodeID() || st.LeaderID != leader.NodeID() || len(st.Members) != 3 || st.Term == 0 || st.AppliedIndex == 0 {
		t.Fatalf("status: %+v", st)
	}
	for _, m := range st.Members {
		if !m.Reachable || m.Leader != (m.ID == leader.NodeID()) {
			t.Fatalf("member %+v", m)
		}
	}

	if rec := api.do("POST", "/api/v1/cluster/remove", `{"id":"nobody"}`); rec.Code != http.StatusNotFound {
		t.Fatalf("remove of an unknown id: %d %s", rec.Code, rec.Body)
	}
	if rec := api.do("POST", "/api/v1/cluster/join", `{"id":"x"}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("join without an address: %d %s", rec.Code, rec.Body)
	}
	if rec := api.do("POST", "/api/v1/cluster/join", `{"id":"`+leader.NodeID()+`","address":"127.0.0.1:1"}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("join under a member's id: %d %s", rec.Code, rec.Body)
	}
	if rec := api.do("POST", "/api/v1/cluster/transfer", `{"id":"`+follower.NodeID()+`"}`); rec.Code != http.StatusOK {
		t.Fatalf("transfer to the follower: %d %s", rec.Code, rec.Body)
	}
	if c.Leader(t) != follower {
		t.Fatal("leadership did not move to the named node")
	}

	rec = api.do("GET", "/metrics", "")
	for _, want := range []string{`mantisdb_cluster_leader{node_id="` + follower.NodeID() + `"} 1`, "mantisdb_cluster_applied_index", "mantisdb_cluster_apply_batches_total"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
}

func TestClusterRoutesOnASingleNode(t *testing.T) {
	api := newClient(t, Options{})
	if rec := api.do("GET", "/api/v1/cluster", ""); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "single node") {
		t.Fatalf("GET /api/v1/cluster on a single node: %d %s", rec.Code, rec.Body)
	}
	// consistency is a cluster parameter; a single node refuses it like any unknown one.
	if rec := api.do("GET", "/api/v1/kv/k?consistency=stale", ""); rec.Code != http.StatusBadRequest {
		t.Fatalf("consistency on a single node: %d %s", rec.Code, rec.Body)
	}
}
