package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/storage"
)

// TestSecurityTLSAuthAndSecrets runs the real server with a token, TLS
// and debug logging, and checks: every route but /health refuses a
// request without the right token; plain HTTP to the TLS port gets no
// data and stores nothing; and neither the token nor the private key
// appear in the log, in error answers or in /metrics.
func TestSecurityTLSAuthAndSecrets(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	certFile, keyFile, pool := writeSelfSigned(t, dir)
	s := startServer(t, bin, "--data-dir", filepath.Join(dir, "data"), "--tls-cert", certFile, "--tls-key", keyFile,
		"--log-level", "debug")
	s.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	s.waitHealthy()
	if !strings.HasPrefix(s.base, "https://127.0.0.1:") {
		t.Fatalf("base URL %s", s.base)
	}
	s.mustCall("PUT", "/api/v1/kv/k", `{"value":"secret value"}`, nil)

	// Every registered route, with no token, with a wrong one and with the
	// token under the wrong scheme: 401, and the answer never echoes what
	// was sent.
	wrong := []string{"", "Bearer " + e2eToken + "x", "Bearer " + e2eToken[:len(e2eToken)-1], "Basic " + e2eToken, e2eToken}
	for _, route := range api.Routes() {
		path := strings.Replace(route.Path, "{key}", "k", 1)
		for _, auth := range wrong {
			req, err := http.NewRequest(route.Method, s.base+path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := s.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if slices.Contains(api.PublicRoutes(), route) {
				// Public routes answer without the token, and hold no data.
				if route.Path == "/health" && resp.StatusCode != 200 {
					t.Fatalf("/health with Authorization %q: %d", auth, resp.StatusCode)
				}
				if resp.StatusCode == 401 || strings.Contains(string(body), "secret value") {
					t.Fatalf("public %s %s with Authorization %q: %d %.200s", route.Method, path, auth, resp.StatusCode, body)
				}
				continue
			}
			if resp.StatusCode != 401 {
				t.Fatalf("%s %s with Authorization %q: status %d, want 401", route.Method, path, auth, resp.StatusCode)
			}
			if strings.Contains(string(body), e2eToken[:8]) || strings.Contains(string(body), "secret value") {
				t.Fatalf("%s %s: the 401 answer leaks: %s", route.Method, path, body)
			}
		}
	}

	// Plain HTTP to the TLS port: no answer carries data, and a write sent
	// that way is not stored.
	plain := &http.Client{Timeout: 10 * time.Second}
	addr := strings.TrimPrefix(s.base, "https://")
	req, _ := http.NewRequest("PUT", "http://"+addr+"/api/v1/kv/plain", strings.NewReader(`{"value":"over plain http"}`))
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	if resp, err := plain.Do(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(body), "plain") {
			t.Fatalf("plain HTTP to the TLS port answered %d: %s", resp.StatusCode, body)
		}
	}
	if resp, err := plain.Get("http://" + addr + "/api/v1/kv/k"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "secret value") {
			t.Fatalf("plain HTTP read the value: %s", body)
		}
	}
	if code := s.call("GET", "/api/v1/kv/plain", "", nil, nil); code != 404 {
		t.Fatalf("the put over plain HTTP was stored (GET over TLS: %d)", code)
	}

	var metrics strings.Builder
	req, _ = http.NewRequest("GET", s.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&metrics, resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), `code="401"`) {
		t.Fatal("/metrics does not count the 401s")
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Join(strings.Split(strings.TrimSpace(string(key)), "\n")[1:2], "")
	logs := s.logText()
	if !strings.Contains(logs, `"status":401`) || !strings.Contains(logs, `"tls":true`) {
		t.Fatalf("the debug log lacks the request lines or the TLS flag:\n%s", logs)
	}
	for name, text := range map[string]string{"the log": logs, "/metrics": metrics.String()} {
		for secret, what := range map[string]string{e2eToken: "the token", e2eToken[:8]: "part of the token", keyBody: "the private key", "PRIVATE KEY": "a private key"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains %s", name, what)
			}
		}
	}
}

// TestSecurityFilePermissions starts the server under umask 000, writes,
// and checks that the data directory is 0700 and every file in it 0600:
// the modes come from the code, not from the operator's umask.
func TestSecurityFilePermissions(t *testing.T) {
	bin := buildServer(t)
	dataDir := filepath.Join(t.TempDir(), "nested", "data")
	old := syscall.Umask(0)
	s := startServer(t, bin, "--data-dir", dataDir)
	syscall.Umask(old)
	s.waitHealthy()
	for i := 0; i < 50; i++ {
		s.mustCall("PUT", fmt.Sprintf("/api/v1/kv/key%d", i), `{"value":"`+strings.Repeat("v", 200)+`"}`, nil)
	}
	s.mustCall("POST", "/api/v1/kv/batch", `{"atomic":true,"operations":[{"op":"delete","key":"key1"},{"op":"put","key":"key2","value":"w"}]}`, nil)
	check := func(when string) {
		files := 0
		err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			} else {
				files++
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: %s has mode %v, want %v", when, path, fi.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if storage.RustAvailable && files == 0 {
			t.Fatalf("%s: the rust engine wrote no files in %s", when, dataDir)
		}
	}
	check("while running")
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	check("after shutdown")
	if fi, err := os.Stat(filepath.Dir(dataDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the parent the server created: %v %v", fi.Mode(), err)
	}
}

// TestSecurityDefaultBind starts the server without --bind: it must
// listen on loopback only.
func TestSecurityDefaultBind(t *testing.T) {
	bin := buildServer(t)
	s := startServerExact(t, bin, "--port", "0", "--log-format", "json", "--data-dir", filepath.Join(t.TempDir(), "data"))
	if !strings.HasPrefix(s.base, "http://127.0.0.1:") {
		t.Fatalf("default listening address %s, want 127.0.0.1", s.base)
	}
	s.waitHealthy()
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestEndToEndConnectionLimit opens twice --max-connections slow
// connections (headers a byte at a time) and checks that the server's
// descriptors stay bounded by the limit, that a client connected before
// keeps being answered, and that every slow connection is closed by the
// header timeout once accepted.
func TestEndToEndConnectionLimit(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc to count descriptors")
	}
	bin := buildServer(t)
	const limit, slow = 16, 30
	s := startServer(t, bin, "--data-dir", filepath.Join(t.TempDir(), "data"), "--max-connections", fmt.Sprint(limit))
	s.client.Transport = &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	s.waitHealthy()
	s.mustCall("PUT", "/api/v1/kv/k", `{"value":"v"}`, nil) // the kept connection
	fdDir := fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid)
	baseline := countDir(t, fdDir)

	addr := strings.TrimPrefix(s.base, "http://")
	start := time.Now()
	var wg sync.WaitGroup
	held := make(chan time.Duration, slow)
	for i := 0; i < slow; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err) // the kernel's backlog takes them even past the limit
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(40 * time.Second)) // bounds the test
			stop := make(chan struct{})
			go func() {
				for _, b := range []byte("GET /api/v1/kv/k HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
					select {
					case <-stop:
						return
					case <-time.After(500 * time.Millisecond):
					}
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
				}
			}()
			_, _ = io.Copy(io.Discard, bufio.NewReader(c))
			close(stop)
			held <- time.Since(start)
		})
	}
	// While the slow connections fill the limit: descriptors bounded, and
	// the kept connection answered promptly.
	peak := 0
	for i := 0; i < 10; i++ {
		time.Sleep(300 * time.Millisecond)
		peak = max(peak, countDir(t, fdDir))
		t0 := time.Now()
		s.mustCall("GET", "/api/v1/kv/k", "", nil)
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("the kept connection waited %v under the slow clients", d)
		}
	}
	if peak > baseline+limit+2 {
		t.Fatalf("%d descriptors open under %d slow clients, baseline %d and --max-connections %d", peak, slow, baseline, limit)
	}
	wg.Wait()
	close(held)
	var last time.Duration
	for d := range held {
		last = max(last, d)
	}
	// 15 slots (the kept connection holds one) take 30 clients in two
	// rounds of the 5s header timeout.
	if last > 2*readHeaderTimeout+5*time.Second {
		t.Fatalf("the last slow connection was closed after %v", last)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func countDir(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
