package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/internal/telemetry"
)

// dashboardJSON is the dashboard answer as a client reads it.
type dashboardJSON struct {
	TimeMs        int64   `json:"time_ms"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Version       string  `json:"version"`
	Engine        string  `json:"engine"`
	Stats         *struct {
		Keys uint64 `json:"keys"`
	} `json:"stats"`
	StatsError string `json:"stats_error"`
	Protocols  []struct {
		Name             string `json:"name"`
		Connections      int64  `json:"connections"`
		ConnectionsTotal uint64 `json:"connections_total"`
		Families         map[string]struct {
			Ops       uint64 `json:"ops"`
			WindowOps uint64 `json:"window_ops"`
			P50       int64  `json:"p50_us"`
			P99       int64  `json:"p99_us"`
		} `json:"families"`
	} `json:"protocols"`
}

// TestDashboardCountsOperationsByFamily sends requests of every family and
// some that are not operations, and checks the dashboard's counters, its
// latency window once the second is over, and the engine figures.
func TestDashboardCountsOperationsByFamily(t *testing.T) {
	const token = "t0ken"
	figures := telemetry.New()
	figures.Protocol("resp").ObserveSince(telemetry.Read, time.Now()) // another protocol's, kept apart
	c := newClient(t, Options{AuthToken: token, Telemetry: figures, Version: "v-test"})
	// Start at the top of a second, so every operation below falls in the
	// same second and the latency window can be checked against them all.
	opsSecond := time.Now().Unix()
	time.Sleep(time.Until(time.Unix(opsSecond+1, 0)))
	opsSecond++
	c.put("a", "1")
	c.put("b", "2")
	c.get("a")
	c.get("a")
	c.get("missing") // a 404 is still a read
	ok[keyJSON](c, "DELETE", "/api/v1/kv/b", "")
	ok[resultsJSON](c, "POST", "/api/v1/kv/batch", `{"operations":[{"op":"put","key":"c","value":"3"},{"op":"get","key":"a"}]}`)
	ok[pageJSON](c, "GET", "/api/v1/kv?prefix=", "")
	ok[pageJSON](c, "GET", "/api/v1/kv?limit=1", "")
	ok[txnJSON](c, "POST", "/api/v1/txn", `{"compare":[{"key":"a","value":"1"}],"success":[{"op":"put","key":"a","value":"9"}]}`)
	// Not operations: refused, bad, and the server's own routes.
	anon := &client{t: t, h: c.h}
	wantError(t, anon.do("GET", "/api/v1/kv/a", ""), http.StatusUnauthorized, codeUnauthorized)
	wantError(t, anon.do("GET", "/api/v1/dashboard", ""), http.StatusUnauthorized, codeUnauthorized)
	wantError(t, c.do("GET", "/api/v1/dashboard?x=1", ""), http.StatusBadRequest, codeInvalidArgument)
	c.do("GET", "/api/v1/stats", "")
	c.do("GET", "/metrics", "")
	c.do("GET", "/ui", "")
	if time.Now().Unix() != opsSecond {
		t.Skip("the machine took over a second for a dozen requests; the latency window cannot be checked")
	}

	d := ok[dashboardJSON](c, "GET", "/api/v1/dashboard", "")
	if d.Version != "v-test" || d.Engine != "memory" || d.Stats == nil || d.Stats.Keys != 2 || d.StatsError != "" {
		t.Fatalf("dashboard header and engine figures: %+v", d)
	}
	if len(d.Protocols) != 2 || d.Protocols[0].Name != "resp" || d.Protocols[1].Name != "http" {
		t.Fatalf("protocols %+v", d.Protocols)
	}
	want := map[string]uint64{"read": 3, "write": 4, "scan": 2, "txn": 1}
	hp := d.Protocols[1]
	for fam, n := range want {
		if got := hp.Families[fam].Ops; got != n {
			t.Errorf("http %s ops %d, want %d", fam, got, n)
		}
	}
	if got := d.Protocols[0].Families["read"].Ops; got != 1 {
		t.Errorf("resp read ops %d, want 1", got)
	}

	// Once the operations' second is over, it is the latency window.
	for time.Now().Unix() == opsSecond {
		time.Sleep(10 * time.Millisecond)
	}
	d = ok[dashboardJSON](c, "GET", "/api/v1/dashboard", "")
	if time.Now().Unix() != opsSecond+1 {
		t.Skip("the machine stalled for over a second; the window moved past the operations")
	}
	for fam, n := range want {
		f := d.Protocols[1].Families[fam]
		if f.WindowOps != n || f.P50 <= 0 || f.P99 < f.P50 {
			t.Errorf("http %s window: %+v, want %d ops with p50 > 0, p99 >= p50", fam, f, n)
		}
	}
}

// TestDashboardReportsAFailingEngine closes the engine under the server:
// the dashboard still answers, with the engine's error instead of its
// figures, so the page can show what is wrong.
func TestDashboardReportsAFailingEngine(t *testing.T) {
	e := newEngine(t)
	c := newClientOver(t, e, Options{})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	d := ok[dashboardJSON](c, "GET", "/api/v1/dashboard", "")
	if d.Stats != nil || !strings.Contains(d.StatsError, "closed") || len(d.Protocols) != 1 {
		t.Fatalf("over a closed engine: %+v", d)
	}
}

// TestDashboardCountsConnections runs a real listener with the server's
// ConnState hook: a kept-alive connection counts while open.
func TestDashboardCountsConnections(t *testing.T) {
	srv := New(newEngine(t), Options{})
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.ConnState = srv.ConnState
	ts.Start()
	defer ts.Close()
	cl := ts.Client()
	read := func() dashboardJSON {
		resp, err := cl.Get(ts.URL + "/api/v1/dashboard")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d dashboardJSON
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := read(); d.Protocols[0].Connections != 1 || d.Protocols[0].ConnectionsTotal != 1 {
		t.Fatalf("while asking over one connection: %+v", d.Protocols[0])
	}
	cl.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := read() // a new connection: the old one must be gone
		p := d.Protocols[0]
		if p.Connections == 1 && p.ConnectionsTotal == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing the first connection: %+v", p)
		}
		// The server may see the close after the new connection's request;
		// ask again over the same (second) connection.
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUIServesTheBundle checks the page and its files: served without
// the token (they hold no data), with a policy that forbids loading from
// elsewhere, revalidated by ETag; other names are 404 and other methods 405.
func TestUIServesTheBundle(t *testing.T) {
	c := newClient(t, Options{AuthToken: "secret"})
	anon := &client{t: t, h: c.h}
	for target, ctype := range map[string]string{
		"/ui": "text/html; charset=utf-8", "/ui/": "text/html; charset=utf-8",
		"/ui/app.js": "text/javascript; charset=utf-8", "/ui/app.css": "text/css; charset=utf-8",
	} {
		rec := anon.do("GET", target, "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != ctype || rec.Body.Len() < 1000 {
			t.Fatalf("GET %s: %d %q, %d bytes", target, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Fatalf("GET %s: Content-Security-Policy %q", target, csp)
		}
		etag := rec.Header().Get("ETag")
		again := anon.do("GET", target, "", "If-None-Match", etag)
		if etag == "" || again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Fatalf("GET %s with If-None-Match %s: %d", target, etag, again.Code)
		}
	}
	page := anon.do("GET", "/ui", "").Body.String()
	if !strings.Contains(page, `<script defer src="/ui/app.js">`) {
		t.Fatal("the page does not load /ui/app.js")
	}
	if head := anon.do("HEAD", "/ui/app.js", ""); head.Code != 200 || head.Body.Len() != 0 {
		t.Fatalf("HEAD /ui/app.js: %d, %d bytes", head.Code, head.Body.Len())
	}
	wantError(t, anon.do("GET", "/ui/missing.js", ""), http.StatusNotFound, codeNotFound)
	wantError(t, anon.do("GET", "/ui/a/b", ""), http.StatusNotFound, codeNotFound)
	wantError(t, anon.do("GET", "/ui?x=1", ""), http.StatusBadRequest, codeInvalidArgument)
	wantError(t, anon.do("POST", "/ui", ""), http.StatusMethodNotAllowed, codeMethodNotAllowed)
	// The page's data needs the token.
	wantError(t, anon.do("GET", "/api/v1/dashboard", ""), http.StatusUnauthorized, codeUnauthorized)
	ok[dashboardJSON](c, "GET", "/api/v1/dashboard", "")
}

// TestPublicRoutesAreKnown pins the routes served without the token, so
// making another route public is a decision this test makes visible.
func TestPublicRoutesAreKnown(t *testing.T) {
	want := []Route{{"GET", "/health"}, {"GET", "/ui"}, {"GET", "/ui/{asset}"}}
	if got := PublicRoutes(); !slices.Equal(got, want) {
		t.Fatalf("public routes %v, want %v", got, want)
	}
}

// TestRouteFamiliesNameRoutes catches a family given to a route that does
// not exist (a renamed path would silently stop counting).
func TestRouteFamiliesNameRoutes(t *testing.T) {
	for rt := range routeFamilies {
		if !slices.Contains(Routes(), rt) {
			t.Errorf("routeFamilies names %v, which is not a route", rt)
		}
	}
}

// dashboardClusterJSON is the cluster part of the dashboard answer.
type dashboardClusterJSON struct {
	Cluster      *cluster.Status `json:"cluster"`
	ClusterError string          `json:"cluster_error"`
}

// fakeClusterStatus reports a fixed cluster status, or an error.
type fakeClusterStatus struct {
	st  cluster.Status
	err error
}

func (f fakeClusterStatus) Status(context.Context) (cluster.Status, error) { return f.st, f.err }

// TestDashboardShowsTheCluster: on a cluster member the dashboard carries
// the node's cluster status, the same answer as GET /api/v1/cluster; a
// single node's answer has no cluster field at all, and a node that cannot
// report says why in cluster_error.
func TestDashboardShowsTheCluster(t *testing.T) {
	single := newClient(t, Options{})
	if raw := single.do("GET", "/api/v1/dashboard", "").Body.String(); strings.Contains(raw, `"cluster`) {
		t.Fatalf("a single node's dashboard mentions a cluster: %s", raw)
	}

	want := cluster.Status{
		ID: "n2", State: "Follower", Address: "127.0.0.1:7002", LeaderID: "n1", LeaderAddr: "127.0.0.1:7001",
		Term: 3, LastIndex: 41, CommitIndex: 40, AppliedIndex: 39, Consistency: "leader",
		Members: []cluster.Member{
			{ID: "n1", Address: "127.0.0.1:7001", Voter: true, Leader: true, Reachable: true, State: "Leader", Term: 3, AppliedIndex: 40},
			{ID: "n2", Address: "127.0.0.1:7002", Voter: true, Self: true, Reachable: true, State: "Follower", Term: 3, AppliedIndex: 39},
			{ID: "n3", Address: "127.0.0.1:7003", Voter: true, Error: "dial tcp: connection refused"},
		},
	}
	srv := New(newEngine(t), Options{})
	srv.clusterStatus = fakeClusterStatus{st: want}
	c := &client{t: t, h: srv.Handler()}
	d := ok[dashboardClusterJSON](c, "GET", "/api/v1/dashboard", "")
	if d.Cluster == nil || !reflect.DeepEqual(*d.Cluster, want) || d.ClusterError != "" {
		t.Fatalf("dashboard cluster %+v (error %q), want %+v", d.Cluster, d.ClusterError, want)
	}

	srv.clusterStatus = fakeClusterStatus{err: cluster.ErrStopped}
	d = ok[dashboardClusterJSON](c, "GET", "/api/v1/dashboard", "")
	if d.Cluster != nil || d.ClusterError != cluster.ErrStopped.Error() {
		t.Fatalf("a node that cannot report: cluster %+v, error %q", d.Cluster, d.ClusterError)
	}
}
