package api

import (
	"encoding/json"
	"net/http"
	"strconv"
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
	// The node forwarded a write, so appended to its raft log, and became
	// leader by the transfer; resends and duplicates are there at zero.
	values := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.HasPrefix(name, "mantisdb_cluster_") {
			continue
		}
		_, val, _ := strings.Cut(rest, "} ")
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		values[name] = f
	}
	for _, name := range []string{"mantisdb_cluster_forward_batches_total", "mantisdb_cluster_forwarded_writes_total",
		"mantisdb_cluster_log_appends_total", "mantisdb_cluster_log_append_entries_total", "mantisdb_cluster_log_append_seconds_total",
		"mantisdb_cluster_candidacies_total", "mantisdb_cluster_leaderships_total", "mantisdb_cluster_last_election_seconds"} {
		if values[name] <= 0 {
			t.Errorf("%s = %v, want > 0", name, values[name])
		}
	}
	for _, name := range []string{"mantisdb_cluster_write_resends_total", "mantisdb_cluster_duplicate_entries_total",
		"mantisdb_cluster_vote_requests_total", "mantisdb_cluster_prevote_requests_total", "mantisdb_cluster_snapshot_engine_syncs_total"} {
		if _, ok := values[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
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
