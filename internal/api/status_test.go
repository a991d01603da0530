package api

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

func TestStats(t *testing.T) {
	c := newClient(t, Options{})
	c.put("a", "1")
	c.put("b", "2")
	c.get("a")
	rec := c.do("GET", "/api/v1/stats", "")
	st := decode[storage.Stats](t, rec)
	if rec.Code != 200 || st.Engine != "memory" || st.Keys != 2 || st.Writes < 2 || st.Reads < 1 {
		t.Fatalf("stats %d: %+v", rec.Code, st)
	}
	for _, field := range []string{`"hits"`, `"misses"`, `"evictions"`, `"hit_rate"`, `"keys"`, `"engine"`} {
		if !strings.Contains(rec.Body.String(), field) {
			t.Fatalf("stats body lacks %s: %s", field, rec.Body)
		}
	}
}

func TestVersion(t *testing.T) {
	c := newClient(t, Options{Version: "1.2.3"})
	got := ok[versionAnswer](c, "GET", "/api/v1/version", "")
	want := versionAnswer{Version: "1.2.3", GoVersion: runtime.Version(), Engine: "memory", RustAvailable: storage.RustAvailable}
	if got != want {
		t.Fatalf("version %+v, want %+v", got, want)
	}
	if got := ok[versionAnswer](newClient(t, Options{}), "GET", "/api/v1/version", ""); got.Version != "dev" {
		t.Fatalf("default version %q", got.Version)
	}
}

// sickEngine fails its health check and Stats with err.
type sickEngine struct {
	storage.StorageEngine
	err error
}

func (e *sickEngine) HealthCheck(context.Context) error            { return e.err }
func (e *sickEngine) Stats(context.Context) (storage.Stats, error) { return storage.Stats{}, e.err }

func TestHealth(t *testing.T) {
	c := newClient(t, Options{})
	if got := ok[healthAnswer](c, "GET", "/health", ""); got != (healthAnswer{Status: "ok", Engine: "memory"}) {
		t.Fatalf("health %+v", got)
	}
	sick := newClientOver(t, &sickEngine{StorageEngine: newEngine(t), err: errors.New("disk on fire")}, Options{})
	wantError(t, sick.do("GET", "/health", ""), http.StatusServiceUnavailable, codeUnavailable, "disk on fire")
	wantError(t, sick.do("GET", "/api/v1/stats", ""), http.StatusInternalServerError, codeInternal, "disk on fire")
	// A closed engine is unavailable everywhere, not an internal error.
	e := newEngine(t)
	closed := newClientOver(t, e, Options{})
	_ = e.Close()
	wantError(t, closed.do("GET", "/health", ""), http.StatusServiceUnavailable, codeUnavailable)
	wantError(t, closed.do("GET", "/api/v1/kv/k", ""), http.StatusServiceUnavailable, codeUnavailable, "closed")
	wantError(t, closed.do("PUT", "/api/v1/kv/k", `{"value":"v"}`), http.StatusServiceUnavailable, codeUnavailable, "closed")
	// Metrics still answer, with the engine reported down.
	rec := closed.do("GET", "/metrics", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "mantisdb_engine_up 0") {
		t.Fatalf("metrics of a closed engine: %d\n%s", rec.Code, rec.Body)
	}
}

func TestMetrics(t *testing.T) {
	c := newClient(t, Options{})
	c.put("k", "v")
	c.get("k")
	c.get("missing")
	c.do("PATCH", "/api/v1/kv/k", "")
	c.do("GET", "/nowhere", "")
	rec := c.do("GET", "/metrics", "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	for _, want := range []string{
		`mantisdb_http_requests_total{code="200",method="put",route="/api/v1/kv/{key}"} 1`,
		`mantisdb_http_requests_total{code="200",method="get",route="/api/v1/kv/{key}"} 1`,
		`mantisdb_http_requests_total{code="404",method="get",route="/api/v1/kv/{key}"} 1`,
		`mantisdb_http_requests_total{code="405",method="patch",route="/api/v1/kv/{key}"} 1`,
		`mantisdb_http_requests_total{code="404",method="get",route="unmatched"} 1`,
		`mantisdb_http_request_duration_seconds_bucket{code="200",method="put",route="/api/v1/kv/{key}",le="+Inf"} 1`,
		`mantisdb_http_requests_in_flight 1`,
		`mantisdb_build_info{engine="memory",version="dev"} 1`,
		"mantisdb_engine_up 1",
		"mantisdb_keys 1",
		"mantisdb_engine_writes_total 1",
		"mantisdb_cache_hits_total 0",
		"mantisdb_cache_hit_ratio 0",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
