package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/serverbuild"
	"github.com/mantisdb/mantisdb/storage"
)

const e2eToken = "e2e-secret-token"

func TestMain(m *testing.M) {
	code := m.Run()
	serverbuild.Remove()
	os.Exit(code)
}

// buildServer builds the real binary once, for the engine this test binary
// has.
func buildServer(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	return serverbuild.Binary(t)
}

// server is a running mantisdb process.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	client *http.Client
	mu     sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
	// respAddr is the Redis-protocol address, from its start-up log line.
	respAddr string
}

// startServer runs bin on a free loopback port (--port 0, the address read
// from the JSON start-up log line) and waits for /health.
func startServer(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	return startServerExact(t, bin, append([]string{"--port", "0", "--bind", "127.0.0.1", "--log-format", "json"}, args...)...)
}

// startServerExact is startServer with exactly args: no default port,
// bind address or log format (the log must still be JSON).
func startServerExact(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	s := &server{t: t, exited: make(chan struct{}), client: &http.Client{Timeout: 10 * time.Second}}
	s.cmd = exec.Command(bin, args...)
	// A free Redis-protocol port unless args name one, so parallel servers
	// do not compete for 6379.
	s.cmd.Env = append(os.Environ(), "MANTISDB_AUTH_TOKEN="+e2eToken, "MANTISDB_RESP_PORT=0")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.Write(sc.Bytes())
			s.log.WriteByte('\n')
			s.mu.Unlock()
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "mantisdb serving the Redis protocol" {
				s.mu.Lock()
				s.respAddr = line.Addr
				s.mu.Unlock()
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "mantisdb listening" {
				addr <- line.Addr
			}
		}
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logText())
		}
	})
	scheme := "http"
	for _, a := range args {
		if a == "--tls-cert" {
			scheme = "https"
		}
	}
	select {
	case a := <-addr:
		s.base = scheme + "://" + a
	case <-s.exited:
		t.Fatalf("server exited at start-up: %v", s.err)
	case <-time.After(30 * time.Second):
		t.Fatal("no start-up log line within 30s")
	}
	return s
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// waitHealthy polls /health, bounded in tries and time.
func (s *server) waitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 200 && time.Now().Before(deadline); i++ {
		resp, err := s.client.Get(s.base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatal("server never became healthy")
}

// call sends a request with the token and decodes a JSON answer into out
// (when not nil), returning the status.
func (s *server) call(method, path, contentType string, body io.Reader, out any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

func (s *server) mustCall(method, path, body string, out any) {
	s.t.Helper()
	if code := s.call(method, path, "", strings.NewReader(body), out); code != 200 {
		s.t.Fatalf("%s %s: status %d", method, path, code)
	}
}

// stop sends SIGTERM and returns the exit code.
func (s *server) stop() int {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	return s.waitExit()
}

func (s *server) waitExit() int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Fatal("server did not exit within 30s of SIGTERM")
	}
	var exit *exec.ExitError
	if errors.As(s.err, &exit) {
		return exit.ExitCode()
	}
	if s.err != nil {
		s.t.Fatal(s.err)
	}
	return 0
}

// waitLog waits, bounded, for the server to log text.
func (s *server) waitLog(text string) {
	s.t.Helper()
	for i := 0; i < 200; i++ {
		if strings.Contains(s.logText(), text) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.t.Fatalf("the server never logged %q", text)
}

func TestEndToEnd(t *testing.T) {
	bin := buildServer(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, bin, "--data-dir", dataDir, "--shutdown-timeout", "20s")
	s.waitHealthy()

	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v, mode %v", err, fi.Mode())
	}
	if code := s.call("GET", "/api/v1/kv/x", "", nil, nil); code != 200 && code != 404 {
		t.Fatalf("GET with the token from MANTISDB_AUTH_TOKEN: %d", code)
	}
	resp, err := s.client.Get(s.base + "/api/v1/stats")
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("stats without the token: %v %v", resp, err)
	}
	resp.Body.Close()

	s.mustCall("PUT", "/api/v1/kv/user%2F1", `{"value":"ann"}`, nil)
	if code := s.call("PUT", "/api/v1/kv/blob", "application/octet-stream", strings.NewReader("\x00\xff\x01"), nil); code != 200 {
		t.Fatalf("raw put: %d", code)
	}
	var got struct{ Key, Value string }
	s.mustCall("GET", "/api/v1/kv/user%2F1", "", &got)
	if got.Key != "user/1" || got.Value != "ann" {
		t.Fatalf("get: %+v", got)
	}
	var batch struct{ Results []map[string]any }
	s.mustCall("POST", "/api/v1/kv/batch", `{"atomic":true,"operations":[
		{"op":"put","key":"user/2","value":"bob"},{"op":"put","key":"user/3","value":"cy"},{"op":"get","key":"user/1"}]}`, &batch)
	if len(batch.Results) != 3 || batch.Results[2]["value"] != "ann" {
		t.Fatalf("batch: %+v", batch)
	}
	var txn struct {
		Succeeded bool
		Results   []map[string]any
	}
	s.mustCall("POST", "/api/v1/txn", `{"compare":[{"key":"user/2","value":"bob"}],"success":[{"op":"put","key":"user/2","value":"bea"}]}`, &txn)
	if !txn.Succeeded {
		t.Fatalf("txn: %+v", txn)
	}
	var page struct {
		Items []struct{ Key, Value string }
		Next  *string
	}
	s.mustCall("GET", "/api/v1/kv?prefix=user%2F&limit=2", "", &page)
	if len(page.Items) != 2 || page.Next == nil || *page.Next != "user/3" {
		t.Fatalf("scan page 1: %+v", page)
	}
	s.mustCall("GET", "/api/v1/kv?prefix=user%2F&limit=2&start=user%2F3", "", &page)
	if len(page.Items) != 1 || page.Next != nil || page.Items[0].Value != "cy" {
		t.Fatalf("scan page 2: %+v", page)
	}

	// A request in flight when SIGTERM arrives still completes: its body is
	// half sent, the signal goes out, then the rest follows.
	pr, pw := io.Pipe()
	inflight := make(chan int, 1)
	go func() {
		inflight <- s.call("PUT", "/api/v1/kv/inflight", "application/octet-stream", pr, nil)
	}()
	if _, err := pw.Write([]byte("half ")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server start reading the request
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitLog("shutting down")
	if _, err := pw.Write([]byte("and the rest")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	select {
	case code := <-inflight:
		if code != 200 {
			t.Fatalf("in-flight put answered %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight put never answered")
	}
	if code := s.waitExit(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	logs := s.logText()
	if strings.Contains(logs, e2eToken) {
		t.Fatal("the auth token reached the log")
	}
	for _, want := range []string{`"engine":"` + storage.DefaultEngine + `"`, `"sync":"always"`, `"tls":false`, `"auth":true`, "mantisdb stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}

	// Restart on the same directory. Only the rust engine is durable.
	s = startServer(t, bin, "--data-dir", dataDir)
	s.waitHealthy()
	if storage.RustAvailable {
		for key, want := range map[string]string{"user%2F1": "ann", "user%2F2": "bea", "user%2F3": "cy", "inflight": "half and the rest"} {
			var got struct{ Value string }
			if code := s.call("GET", "/api/v1/kv/"+key, "", nil, &got); code != 200 || got.Value != want {
				t.Errorf("after restart %s = %q (status %d), want %q", key, got.Value, code, want)
			}
		}
		req, _ := http.NewRequest("GET", s.base+"/api/v1/kv/blob", nil)
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		req.Header.Set("Accept", "application/octet-stream")
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(raw) != "\x00\xff\x01" {
			t.Errorf("raw value after restart: %q", raw)
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("second exit code %d", code)
	}
}

func TestEndToEndTLS(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	certFile, keyFile, pool := writeSelfSigned(t, dir)
	s := startServer(t, bin, "--data-dir", filepath.Join(dir, "data"), "--tls-cert", certFile, "--tls-key", keyFile)
	s.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	s.waitHealthy()
	s.mustCall("PUT", "/api/v1/kv/k", `{"value":"over tls"}`, nil)
	if !strings.Contains(s.logText(), `"tls":true`) {
		t.Error("start-up log does not say tls is on")
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestEndToEndBadFlags(t *testing.T) {
	bin := buildServer(t)
	out, err := exec.Command(bin, "--sync", "sometimes").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "--sync") {
		t.Fatalf("bad --sync: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mantisdb "+serverbuild.Version) {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	// A port in use fails start-up with exit code 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	out, err = exec.Command(bin, "--port", port, "--data-dir", filepath.Join(t.TempDir(), "d")).CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "listening on") {
		t.Fatalf("port in use: %v\n%s", err, out)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mantisdb e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
