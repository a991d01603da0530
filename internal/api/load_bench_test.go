package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/cputime"
	"github.com/mantisdb/mantisdb/storage"
)

// The benchmarks below drive a real http.Server over loopback with the
// settings cmd/mantisdb uses (bearer token, minimum body rate, timeouts)
// from loadConns keep-alive connections, each writing a request and
// reading its answer in turn, as wrk does. The engine is the default one
// (Rust under -tags rust) with --sync never. They measure the server's
// cost per request of a route; the client's cost is in the figures too,
// but is the same for every route:
//
//	go test -tags rust -run '^$' -bench 'ServerLoad' -benchtime 200000x ./internal/api
//
// cpu-ns/op is the process's CPU time (server and client) per request.
// With -cpuprofile the profile shows where a PUT spends what a GET does not.

const (
	loadConns = 50
	loadKeys  = 10000
	loadToken = "bench-token"
)

func startLoadServer(b *testing.B) string {
	b.Helper()
	cfg := storage.DefaultConfig()
	cfg.Sync = storage.SyncNever
	engine, err := storage.NewDefaultStorageEngine(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := engine.Init(b.TempDir()); err != nil {
		b.Fatal(err)
	}
	value := strings.Repeat("v", 100)
	for i := range loadKeys {
		if err := engine.Put(context.Background(), "key"+strconv.Itoa(i), value); err != nil {
			b.Fatal(err)
		}
	}
	s := New(engine, Options{AuthToken: loadToken, MinBodyRate: 16 << 10, BodyGrace: DefaultBodyGrace, BodyTimeout: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), ConnState: s.ConnState,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 1 << 20}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		_ = srv.Close()
		_ = engine.Close()
	})
	return ln.Addr().String()
}

// runLoad sends b.N requests made by mk over loadConns connections and
// fails on any answer but 200.
func runLoad(b *testing.B, addr string, mk func(key string) string) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, loadConns)
	cpu0 := cputime.ForBenchmark(b)
	b.ResetTimer()
	for c := range loadConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			seed := uint32(c*7919 + 1)
			for next.Add(1) <= int64(b.N) {
				seed = seed*1664525 + 1013904223
				if _, err := io.WriteString(conn, mk("key"+strconv.Itoa(int(seed>>8)%loadKeys))); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	// CPU time of the process (server and client) per request: on a
	// machine shared with other work it varies less than the wall time.
	b.ReportMetric(float64(cputime.ForBenchmark(b)-cpu0)/float64(b.N), "cpu-ns/op")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

const loadHeaders = "Host: bench\r\nAuthorization: Bearer " + loadToken + "\r\n"

func BenchmarkServerLoadVersion(b *testing.B) {
	addr := startLoadServer(b)
	runLoad(b, addr, func(string) string {
		return "GET /api/v1/version HTTP/1.1\r\n" + loadHeaders + "\r\n"
	})
}

func BenchmarkServerLoadGet(b *testing.B) {
	addr := startLoadServer(b)
	runLoad(b, addr, func(key string) string {
		return "GET /api/v1/kv/" + key + " HTTP/1.1\r\n" + loadHeaders + "\r\n"
	})
}

func BenchmarkServerLoadPutJSON(b *testing.B) {
	addr := startLoadServer(b)
	body := `{"value":"` + strings.Repeat("v", 100) + `"}`
	runLoad(b, addr, func(key string) string {
		return "PUT /api/v1/kv/" + key + " HTTP/1.1\r\n" + loadHeaders + "Content-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
	})
}

func BenchmarkServerLoadPutRaw(b *testing.B) {
	addr := startLoadServer(b)
	body := strings.Repeat("v", 100)
	runLoad(b, addr, func(key string) string {
		return "PUT /api/v1/kv/" + key + " HTTP/1.1\r\n" + loadHeaders + "Content-Type: application/octet-stream\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
	})
}
