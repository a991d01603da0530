package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

func TestAuth(t *testing.T) {
	const token = "s3cret-token"
	c := newClient(t, Options{AuthToken: token})
	c.put("k", "v") // the client sends the token

	anon := &client{t: t, h: c.h}
	for _, route := range Routes() {
		if slices.Contains(PublicRoutes(), route) {
			continue
		}
		target := strings.Replace(route.Path, "{key}", "k", 1)
		rec := anon.do(route.Method, target, `{}`)
		wantError(t, rec, http.StatusUnauthorized, codeUnauthorized, "missing bearer token")
		if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="mantisdb"` {
			t.Fatalf("%s %s: WWW-Authenticate %q", route.Method, target, got)
		}
	}
	for _, header := range []string{"Bearer wrong", "Bearer " + token + "x", "Bearer s3cret", "Bearer ", "Basic " + token, token} {
		rec := anon.do("GET", "/api/v1/kv/k", "", "Authorization", header)
		wantError(t, rec, http.StatusUnauthorized, codeUnauthorized)
	}
	rec := anon.do("GET", "/api/v1/kv/k", "", "Authorization", "Bearer wrong")
	if got := rec.Header().Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Fatalf("bad token: WWW-Authenticate %q", got)
	}
	// The scheme is case-insensitive.
	if rec := anon.do("GET", "/api/v1/kv/k", "", "Authorization", "bearer "+token); rec.Code != 200 {
		t.Fatalf("lower-case scheme: %d %s", rec.Code, rec.Body)
	}
	// /health stays open for probes; unknown paths and 405s need the token too.
	ok[healthAnswer](anon, "GET", "/health", "")
	wantError(t, anon.do("GET", "/nowhere", ""), http.StatusUnauthorized, codeUnauthorized)
	wantError(t, anon.do("PATCH", "/api/v1/kv/k", ""), http.StatusUnauthorized, codeUnauthorized)
	wantError(t, c.do("PATCH", "/api/v1/kv/k", ""), http.StatusMethodNotAllowed, codeMethodNotAllowed)
	if rec := c.do("GET", "/metrics", ""); rec.Code != 200 {
		t.Fatalf("metrics with the token: %d", rec.Code)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	c := newClient(t, Options{})
	cases := []struct{ method, target, allow string }{
		{"PATCH", "/api/v1/kv/k", "PUT, POST, GET, DELETE, HEAD"},
		{"PATCH", "/api/v1/kv/batch", "PUT, POST, GET, DELETE, HEAD"},
		{"DELETE", "/api/v1/kv", "GET, HEAD"},
		{"POST", "/api/v1/kv", "GET, HEAD"},
		{"GET", "/api/v1/txn", "POST"},
		{"PUT", "/api/v1/stats", "GET, HEAD"},
		{"DELETE", "/api/v1/version", "GET, HEAD"},
		{"POST", "/health", "GET, HEAD"},
		{"POST", "/metrics", "GET, HEAD"},
	}
	for _, tc := range cases {
		rec := c.do(tc.method, tc.target, "")
		wantError(t, rec, http.StatusMethodNotAllowed, codeMethodNotAllowed, tc.method)
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.target, got, tc.allow)
		}
	}
	wantError(t, c.do("GET", "/api/v2/kv/k", ""), http.StatusNotFound, codeNotFound, "no route")
	// HEAD works wherever GET does.
	c.put("k", "v")
	if rec := c.do("HEAD", "/api/v1/kv/k", ""); rec.Code != 200 {
		t.Fatalf("HEAD: %d", rec.Code)
	}
}

// panicEngine panics in Get and GetWithMeta.
type panicEngine struct{ storage.StorageEngine }

func (panicEngine) Get(context.Context, string) (string, error) { panic("engine bug") }

func (panicEngine) GetWithMeta(context.Context, string) (string, storage.KeyMeta, error) {
	panic("engine bug")
}

func TestPanicRecovery(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c := newClientOver(t, panicEngine{newEngine(t)}, Options{Logger: log})
	wantError(t, c.do("GET", "/api/v1/kv/k", ""), http.StatusInternalServerError, codeInternal)
	if !strings.Contains(logs.String(), "engine bug") {
		t.Fatalf("the panic was not logged: %s", logs.String())
	}
	// The server goes on serving.
	c.put("k", "v")
	rec := c.do("GET", "/metrics", "")
	if !strings.Contains(rec.Body.String(), `mantisdb_http_requests_total{code="500",method="get",route="/api/v1/kv/{key}"} 1`) {
		t.Fatal("the 500 was not counted")
	}
}

func TestRequestLog(t *testing.T) {
	var logs bytes.Buffer
	debug := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newClient(t, Options{Logger: debug, AuthToken: "tok"})
	c.put("k", "v")
	c.do("GET", "/api/v1/kv/nope", "")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "method=PUT path=/api/v1/kv/k status=200") ||
		!strings.Contains(lines[1], "status=404") {
		t.Fatalf("request log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "tok") {
		t.Fatal("the auth token reached the log")
	}
	// At info level nothing is logged per request.
	logs.Reset()
	quiet := newClient(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	quiet.put("k", "v")
	if logs.Len() != 0 {
		t.Fatalf("info level logged: %s", logs.String())
	}
}
