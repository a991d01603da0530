package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

// newEngine returns an initialised memory engine closed at the end of t.
func newEngine(t testing.TB) storage.StorageEngine {
	t.Helper()
	e := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := e.Init(t.TempDir()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// client sends requests straight to a Server's handler.
type client struct {
	t     testing.TB
	h     http.Handler
	token string
}

func newClient(t testing.TB, opts Options) *client {
	t.Helper()
	return newClientOver(t, newEngine(t), opts)
}

func newClientOver(t testing.TB, e storage.StorageEngine, opts Options) *client {
	t.Helper()
	return &client{t: t, h: New(e, opts).Handler(), token: opts.AuthToken}
}

// do sends method target with body; headers come in name, value pairs.
// target is a raw request URI, so percent-escapes reach the server as sent.
func (c *client) do(method, target, body string, headers ...string) *httptest.ResponseRecorder {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	return rec
}

// ok sends a request that must answer 200 and decodes its JSON into T.
func ok[T any](c *client, method, target, body string, headers ...string) T {
	c.t.Helper()
	rec := c.do(method, target, body, headers...)
	if rec.Code != http.StatusOK {
		c.t.Fatalf("%s %s: status %d, want 200; body %s", method, target, rec.Code, rec.Body)
	}
	return decode[T](c.t, rec)
}

func decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, rec.Body)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	return v
}

// wantError checks an error answer: status, code, and that the message
// contains every one of msgParts.
func wantError(t testing.TB, rec *httptest.ResponseRecorder, status int, code string, msgParts ...string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	body := decode[errorBody](t, rec)
	if body.Error.Code != code {
		t.Fatalf("code %q, want %q; message %q", body.Error.Code, code, body.Error.Message)
	}
	if body.Error.Message == "" {
		t.Fatalf("empty error message")
	}
	for _, part := range msgParts {
		if !strings.Contains(body.Error.Message, part) {
			t.Fatalf("message %q does not contain %q", body.Error.Message, part)
		}
	}
}

// Answer shapes as a client sees them.
type (
	keyJSON struct {
		Key         string `json:"key"`
		KeyEncoding string `json:"key_encoding"`
		OK          bool   `json:"ok"`
	}
	valueJSON struct {
		Key           string `json:"key"`
		KeyEncoding   string `json:"key_encoding"`
		Value         string `json:"value"`
		ValueEncoding string `json:"value_encoding"`
	}
	resultJSON struct {
		Op            string  `json:"op"`
		Key           string  `json:"key"`
		KeyEncoding   string  `json:"key_encoding"`
		Found         *bool   `json:"found"`
		Value         *string `json:"value"`
		ValueEncoding string  `json:"value_encoding"`
	}
	resultsJSON struct {
		Results []resultJSON `json:"results"`
	}
	txnJSON struct {
		Succeeded bool         `json:"succeeded"`
		Results   []resultJSON `json:"results"`
	}
	pageJSON struct {
		Items        []valueJSON `json:"items"`
		Next         *string     `json:"next"`
		NextEncoding string      `json:"next_encoding"`
	}
)

// get returns a key's value through the API, and whether it was found.
func (c *client) get(key string) (string, bool) {
	c.t.Helper()
	rec := c.do("GET", "/api/v1/kv/"+key, "")
	if rec.Code == http.StatusNotFound {
		return "", false
	}
	if rec.Code != http.StatusOK {
		c.t.Fatalf("GET %s: status %d; body %s", key, rec.Code, rec.Body)
	}
	return decode[valueJSON](c.t, rec).Value, true
}

// put stores key=value through the API.
func (c *client) put(key, value string) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]string{"value": value})
	ok[keyJSON](c, "PUT", "/api/v1/kv/"+key, string(body))
}
