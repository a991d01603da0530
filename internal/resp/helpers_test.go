package resp

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// testServer is a RESP server on a memory engine, listening on a free
// loopback port, closed with the test.
type testServer struct {
	srv    *Server
	engine storage.StorageEngine
	store  *kv.Store
	addr   string
}

func startTestServer(t testing.TB, tweak func(*Config)) *testServer {
	t.Helper()
	engine := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := engine.Init(""); err != nil {
		t.Fatal(err)
	}
	store := kv.New(engine)
	// MANTISDB_TEST_RESP_TRANSPORT=goroutines (or eventloop) runs every
	// test that does not choose its transport on that one.
	cfg := Config{Store: store, Version: "test", Sync: "always", Transport: os.Getenv("MANTISDB_TEST_RESP_TRANSPORT")}
	if tweak != nil {
		tweak(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Start(ln, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = engine.Close()
	})
	return &testServer{srv: srv, engine: engine, store: store, addr: ln.Addr().String()}
}

// client returns a go-redis client speaking protocol version proto (2 or 3).
func (ts *testServer) client(t testing.TB, proto int, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: ts.addr, Protocol: proto, DisableIdentity: false, MaxRetries: -1, PoolSize: 4}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawConn is a plain TCP connection for byte-exact exchanges.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	buf  []byte
}

func (ts *testServer) raw(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, conn: c}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

// expect reads exactly len(want) bytes and compares them.
func (r *rawConn) expect(want string) {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 0, len(want))
	tmp := make([]byte, 4096)
	for len(got) < len(want) {
		if len(r.buf) > 0 {
			n := min(len(r.buf), len(want)-len(got))
			got = append(got, r.buf[:n]...)
			r.buf = r.buf[n:]
			continue
		}
		n, err := r.conn.Read(tmp)
		if err != nil {
			r.t.Fatalf("reading reply: %v; got %q so far, want %q", err, got, want)
		}
		r.buf = append(r.buf, tmp[:n]...)
	}
	if string(got) != want {
		r.t.Fatalf("reply %q, want %q", got, want)
	}
}

// expectClosed checks that the server closed the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := r.conn.Read(make([]byte, 1))
	if err == nil {
		r.t.Fatalf("connection still open (read %d bytes)", n)
	}
}
