package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// newNetServer serves a Server on a real loopback listener, so connection
// deadlines apply (the recorder of newClient has none).
func newNetServer(t *testing.T, opts Options) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	ts := httptest.NewUnstartedServer(New(newEngine(t), opts).Handler())
	ts.Config.ReadHeaderTimeout = 5 * time.Second
	ts.Config.ReadTimeout = time.Minute
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, logs
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rawRequest sends head on a new connection, then trickles body a byte
// every gap, and returns the answer's status line ("" when the server
// closed the connection without one) and how long the connection lasted.
func rawRequest(t *testing.T, addr, head string, body []byte, gap time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(start.Add(30 * time.Second)) // bounds the test, far beyond every limit checked
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		for i := range body {
			time.Sleep(gap)
			if _, err := conn.Write(body[i : i+1]); err != nil {
				return
			}
		}
	}()
	br := bufio.NewReader(conn)
	line, _ := br.ReadString('\n')
	_, _ = io.Copy(io.Discard, br) // until the server closes the connection
	return strings.TrimSpace(line), time.Since(start)
}

func TestSlowBodyIsCutOff(t *testing.T) {
	const grace = time.Second
	ts, logs := newNetServer(t, Options{MinBodyRate: 1024, BodyGrace: grace, BodyTimeout: time.Minute, AuthToken: "tok"})
	addr := ts.Listener.Addr().String()
	body := bytes.Repeat([]byte("x"), 1000)
	head := "PUT /api/v1/kv/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
	// A byte every 100ms is 10 bytes/s, far under 1024: cut off soon after
	// the grace period instead of after the minute of BodyTimeout.
	status, held := rawRequest(t, addr, head, body, 100*time.Millisecond)
	if !strings.Contains(status, " 408 ") {
		t.Fatalf("status %q, want 408", status)
	}
	if held < grace || held > grace+3*time.Second {
		t.Fatalf("the connection lasted %v, want about the %v grace period", held, grace)
	}
	// The same trickle without the token: 401 at once, and the server's
	// read of the unread body is held to the rate too.
	status, held = rawRequest(t, addr, strings.Replace(head, "Authorization: Bearer tok\r\n", "", 1), body, 100*time.Millisecond)
	if !strings.Contains(status, " 401 ") || held > grace+3*time.Second {
		t.Fatalf("no token: status %q after %v, want 401 and the connection closed within %v", status, held, grace+3*time.Second)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a slow client is not a server error:\n%s", logs)
	}
}

func TestBodyAtTheRatePasses(t *testing.T) {
	ts, _ := newNetServer(t, Options{MinBodyRate: 16 << 10, BodyGrace: 500 * time.Millisecond, BodyTimeout: time.Minute})
	// 64 KiB in 8 KiB pieces every 250ms: 32 KiB/s, twice the minimum, for
	// 2s, well past the grace period.
	pr, pw := io.Pipe()
	go func() {
		piece := bytes.Repeat([]byte("v"), 8<<10)
		for i := 0; i < 8; i++ {
			time.Sleep(250 * time.Millisecond)
			if _, err := pw.Write(piece); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", ts.URL+"/api/v1/kv/steady", pr)
	req.ContentLength = 64 << 10
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
}

func TestDeclaredLengthReservesNoMemory(t *testing.T) {
	// Twenty connections declare a 64 MiB body and send none of it. The
	// server must not set aside the 1.25 GiB they promise.
	ts, _ := newNetServer(t, Options{MinBodyRate: 1, BodyGrace: 20 * time.Second, BodyTimeout: time.Minute})
	addr := ts.Listener.Addr().String()
	const conns, declared = 20, 64 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		fmt.Fprintf(c, "PUT /api/v1/kv/big%d HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\nab", i, declared)
	}
	// Wait, bounded, until every handler is reading its body.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && inFlight(t, ts) < conns {
		time.Sleep(20 * time.Millisecond)
	}
	if n := inFlight(t, ts); n < conns {
		t.Fatalf("%d requests in flight, want %d", n, conns)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if grew > 32<<20 {
		t.Fatalf("the heap grew by %d MiB for %d bodies that never came", grew>>20, conns)
	}
}

// inFlight reads mantisdb_http_requests_in_flight, less the scrape itself.
func inFlight(t *testing.T, ts *httptest.Server) int {
	t.Helper()
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var n float64
		if _, err := fmt.Sscanf(sc.Text(), "mantisdb_http_requests_in_flight %g", &n); err == nil {
			return int(n) - 1
		}
	}
	t.Fatal("no mantisdb_http_requests_in_flight in /metrics")
	return 0
}

func TestBodyCutShortIsAClientError(t *testing.T) {
	ts, logs := newNetServer(t, Options{})
	addr := ts.Listener.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "PUT /api/v1/kv/short HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nonly this")
	c.Close()
	// The handler sees the body end early: a 400, counted, and no error
	// line (a client hanging up is not the server failing).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := ts.Client().Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(data), `mantisdb_http_requests_total{code="400",method="put",route="/api/v1/kv/{key}"} 1`) {
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Fatalf("error logged for a client hanging up:\n%s", logs)
			}
			return
		}
		if strings.Contains(string(data), `code="500"`) {
			t.Fatalf("a body cut short answered 500:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the cut-short request was never answered 400")
}

func TestSlowBodyIsCutOffOverHTTP2(t *testing.T) {
	const grace = time.Second
	ts := httptest.NewUnstartedServer(New(newEngine(t), Options{MinBodyRate: 1024, BodyGrace: grace, BodyTimeout: time.Minute}).Handler())
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		for i := 0; i < 300; i++ { // 10 bytes/s for at most 30s
			time.Sleep(100 * time.Millisecond)
			if _, err := pw.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	req, _ := http.NewRequest("PUT", ts.URL+"/api/v1/kv/slow", pr)
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("%s %d, want HTTP/2 408", resp.Proto, resp.StatusCode)
	}
	if held := time.Since(start); held > grace+3*time.Second {
		t.Fatalf("answered after %v", held)
	}
}
