package ui_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/storage"
)

// withClusterStatus serves next, adding st as the cluster field of every
// dashboard answer: what a cluster member's server answers, without
// starting a raft cluster to get it.
func withClusterStatus(t *testing.T, next http.Handler, st cluster.Status) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/dashboard" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var ans map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Errorf("dashboard answer: %v", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ans["cluster"] = st
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	})
}

// TestBrowserDashboardShowsTheCluster: a dashboard answer with a cluster
// section shows the Cluster panel with this node's role, the leader, the
// term, applied/commit indexes and a row per member, an unreachable one
// marked so.
func TestBrowserDashboardShowsTheCluster(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	eng := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := eng.Init(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	st := cluster.Status{
		ID: "n2", State: "Follower", Address: "127.0.0.1:7002", LeaderID: "n1", LeaderAddr: "127.0.0.1:7001",
		Term: 7, LastIndex: 120, CommitIndex: 118, AppliedIndex: 117, Consistency: "leader",
		Members: []cluster.Member{
			{ID: "n1", Address: "127.0.0.1:7001", Voter: true, Leader: true, Reachable: true, State: "Leader", Term: 7, AppliedIndex: 118},
			{ID: "n2", Address: "127.0.0.1:7002", Voter: true, Self: true, Reachable: true, State: "Follower", Term: 7, AppliedIndex: 117},
			{ID: "n3", Address: "127.0.0.1:7003", Voter: true, Error: "dial tcp 127.0.0.1:7003: connection refused"},
		},
	}
	srv := api.New(eng, api.Options{Version: "browser-test"})
	ts := httptest.NewServer(withClusterStatus(t, srv.Handler(), st))
	t.Cleanup(ts.Close)

	ctx := b.Tab()
	do(t, ctx, "opening the dashboard of a cluster member", chromedp.Navigate(ts.URL+"/ui"),
		poll(`!document.getElementById('cluster').hidden && document.querySelectorAll('#cluster-members tr').length === 3`))
	tiles := eval[string](t, ctx, `document.getElementById('cluster-tiles').innerText`)
	for _, want := range []string{"n2", "Follower", "n1 (127.0.0.1:7001)", "7", "117 / 118"} {
		if !strings.Contains(tiles, want) {
			t.Errorf("cluster tiles lack %q: %q", want, tiles)
		}
	}
	rows := eval[[]string](t, ctx, `[...document.querySelectorAll('#cluster-members tr')].map((r) => [...r.cells].map((c) => c.textContent).join('|'))`)
	want := []string{
		"n1|127.0.0.1:7001|Leader|118|0",
		"n2 (this node)|127.0.0.1:7002|Follower|117|0",
		"n3|127.0.0.1:7003|unreachable|–|–",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("members table:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	if cls := eval[string](t, ctx, `document.querySelector('#cluster-members tr[data-member=n3]').className`); cls != "unreachable" {
		t.Errorf("the unreachable member's row has class %q", cls)
	}
	noConsoleErrors(t, b, nil)
}
