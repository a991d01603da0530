package resp

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/telemetry"
)

// TestPipelineAndInline: a pipeline of RESP and inline commands answers
// in order in one exchange.
func TestPipelineAndInline(t *testing.T) {
	ts := startTestServer(t, nil)
	r := ts.raw(t)
	r.send("PING\r\nSET a 1\r\nGET a\r\nINCR a\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
	r.expect("+PONG\r\n+OK\r\n$1\r\n1\r\n:2\r\n$1\r\n2\r\n")
}

// TestConcurrentPipelineKeepsOrder: with concurrent dispatch, commands on
// one key still apply in order and replies keep the request order.
func TestConcurrentPipelineKeepsOrder(t *testing.T) {
	ts := startTestServer(t, func(c *Config) { c.ConcurrentPipeline = true })
	r := ts.raw(t)
	var req, want strings.Builder
	for i := range 200 {
		req.WriteString("INCR c\r\nSET k" + itoa(i) + " v\r\n")
		want.WriteString(":" + itoa(i+1) + "\r\n+OK\r\n")
	}
	r.send(req.String())
	r.expect(want.String())
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestRequestLimits: oversized bulks, arrays and inline lines get Redis's
// protocol errors and the connection closes.
func TestRequestLimits(t *testing.T) {
	ts := startTestServer(t, func(c *Config) { c.MaxBulk = 16; c.MaxArgs = 4 })
	r := ts.raw(t)
	r.send("SET a 1\r\n*2\r\n$3\r\nGET\r\n$17\r\n")
	r.expect("+OK\r\n-ERR Protocol error: invalid bulk length\r\n")
	r.expectClosed()
	r = ts.raw(t)
	r.send("*5\r\n")
	r.expect("-ERR Protocol error: invalid multibulk length\r\n")
	r.expectClosed()
	r = ts.raw(t)
	r.send("*1\r\nx")
	r.expect("-ERR Protocol error: expected '$', got 'x'\r\n")
	r.expectClosed()
}

// TestIdleTimeoutAndMaxConnections.
func TestIdleTimeoutAndMaxConnections(t *testing.T) {
	ts := startTestServer(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond; c.MaxConnections = 1 })
	r := ts.raw(t)
	r.send("PING\r\n")
	r.expect("+PONG\r\n")
	r2 := ts.raw(t)
	r2.expect("-ERR max number of clients reached\r\n")
	r.expectClosed() // idle past 200ms
}

// TestAuth: with a token, commands need AUTH or HELLO AUTH.
func TestAuth(t *testing.T) {
	ts := startTestServer(t, func(c *Config) { c.AuthToken = "s3cret" })
	r := ts.raw(t)
	r.send("GET k\r\nAUTH wrong\r\nAUTH default s3cret\r\nGET k\r\n")
	r.expect("-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n$-1\r\n")
	r = ts.raw(t)
	r.send("HELLO 3 AUTH default s3cret\r\nGET k\r\n")
	r.expect("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:2\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n_\r\n")
}

// TestExpiredKeysInvisible: an expired key is in no read.
func TestExpiredKeysInvisible(t *testing.T) {
	ts := startTestServer(t, nil)
	r := ts.raw(t)
	r.send("SET e v PX 50\r\nSET keep v\r\n")
	r.expect("+OK\r\n+OK\r\n")
	time.Sleep(80 * time.Millisecond)
	r.send("GET e\r\nEXISTS e\r\nKEYS *\r\nDBSIZE\r\nTTL e\r\nSCAN 0\r\n")
	r.expect("$-1\r\n:0\r\n*1\r\n$4\r\nkeep\r\n:1\r\n:-2\r\n*2\r\n$1\r\n0\r\n*1\r\n$4\r\nkeep\r\n")
}

// TestScanUnknownCursor: a cursor the server never issued is an error.
func TestScanUnknownCursor(t *testing.T) {
	ts := startTestServer(t, nil)
	r := ts.raw(t)
	r.send("SCAN 12345\r\n")
	r.expect("-ERR invalid cursor: cursor 12345 is unknown or expired (cursors last 10m0s after their last use); start again from 0\r\n")
}

// TestLargeRequestThenMore: after a request large enough to replace the
// connection's reader, the connection goes on (a pipeline included).
func TestLargeRequestThenMore(t *testing.T) {
	ts := startTestServer(t, nil)
	r := ts.raw(t)
	big := strings.Repeat("x", 3<<20)
	r.send("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" + strconv.Itoa(len(big)) + "\r\n" + big + "\r\n")
	r.expect("+OK\r\n")
	r.send("STRLEN big\r\nPING\r\n")
	r.expect(":" + strconv.Itoa(len(big)) + "\r\n+PONG\r\n")
	r.send("GET big\r\n")
	r.expect("$" + strconv.Itoa(len(big)) + "\r\n" + big + "\r\n")
}

// TestTelemetry: commands reach the dashboard's recorder by family, EXEC
// as one transaction however many commands it ran, with the connections.
func TestTelemetry(t *testing.T) {
	rec := telemetry.New()
	ts := startTestServer(t, func(c *Config) { c.Telemetry = rec })
	r := ts.raw(t)
	r.send("SET a 1\r\nGET a\r\nMGET a b\r\nSCAN 0\r\nMULTI\r\nINCR a\r\nINCR a\r\nEXEC\r\nPING\r\n")
	r.expect("+OK\r\n$1\r\n1\r\n*2\r\n$1\r\n1\r\n$-1\r\n*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:2\r\n:3\r\n+PONG\r\n")
	snap := rec.Snapshot()
	if len(snap.Protocols) != 1 || snap.Protocols[0].Name != "redis" {
		t.Fatalf("protocols %+v", snap.Protocols)
	}
	p := snap.Protocols[0]
	got := [telemetry.NumFamilies]uint64{}
	for f := range got {
		got[f] = p.Families[f].Ops
	}
	want := [telemetry.NumFamilies]uint64{telemetry.Read: 2, telemetry.Write: 1, telemetry.Scan: 1, telemetry.Txn: 1}
	if got != want || p.Connections != 1 || p.ConnectionsTotal != 1 {
		t.Fatalf("families %v (want %v), connections %d/%d", got, want, p.Connections, p.ConnectionsTotal)
	}
}
