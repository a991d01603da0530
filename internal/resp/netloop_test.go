package resp

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// slowEngine is a memory engine whose writes of a key containing "slow"
// take delay: a command that waits, as a write under --sync always does.
type slowEngine struct {
	*storage.MemoryEngine
	delay time.Duration
}

func (e *slowEngine) Write(ctx context.Context, ops []storage.BatchOp) error {
	for _, op := range ops {
		if strings.Contains(op.Key, "slow") {
			time.Sleep(e.delay)
			break
		}
	}
	return e.MemoryEngine.Write(ctx, ops)
}

// startSlowServer starts a server whose writes wait for their "sync"
// (ConcurrentPipeline, as under --sync always), on a slowEngine, served by
// one event loop.
func startSlowServer(t *testing.T, delay time.Duration, tweak func(*Config)) *testServer {
	t.Helper()
	mem := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := mem.Init(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	store := kv.New(&slowEngine{MemoryEngine: mem, delay: delay})
	return startTestServer(t, func(c *Config) {
		c.Store = store
		c.ConcurrentPipeline = true
		c.Loops = 1 // one loop: a slow command on it would stall everyone
		c.Transport = TransportEventLoop
		if tweak != nil {
			tweak(c)
		}
	})
}

// needLoops skips a test of the event loop where there is none.
func needLoops(t *testing.T, ts *testServer) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		ts.srv.mu.Lock()
		n := len(ts.srv.loops)
		ts.srv.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Skip("no event loop on this platform")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConnected waits until the server counts n open connections.
func waitConnected(t *testing.T, ts *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.connected() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", ts.srv.connected(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLoopSlowCommandKeepsOrder: a command that waits runs off the loop;
// what the same connection sends meanwhile is answered after it, in
// order, and other connections are served while it waits.
func TestLoopSlowCommandKeepsOrder(t *testing.T) {
	ts := startSlowServer(t, 800*time.Millisecond, nil)
	needLoops(t, ts)
	a, b := ts.raw(t), ts.raw(t)
	b.send("PING\r\n")
	b.expect("+PONG\r\n")

	// Slow, then fast ones in separate packets while the slow one runs.
	start := time.Now()
	a.send("SET slow:1 v1\r\n")
	time.Sleep(50 * time.Millisecond)
	a.send("GET slow:1\r\nPING\r\n")
	a.send("GET other\r\nECHO e\r\n")
	b.send("PING\r\nGET slow:1\r\n")
	b.expect("+PONG\r\n$-1\r\n")
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("another connection waited %v behind a slow command", d)
	}
	a.expect("+OK\r\n$2\r\nv1\r\n+PONG\r\n$-1\r\n$1\r\ne\r\n")

	// Slow and fast in one pipeline; then writes (off the loop here) and
	// reads alternating.
	a.send("GET a\r\nSET slow:2 v2\r\nGET slow:2\r\nSET k3 v3\r\nPING\r\nGET k3\r\n")
	a.expect("$-1\r\n+OK\r\n$2\r\nv2\r\n+OK\r\n+PONG\r\n$2\r\nv3\r\n")

	// MULTI/EXEC, EXEC off the loop, with fast commands around it.
	a.send("MULTI\r\nSET k4 v4\r\nGET k4\r\nEXEC\r\nGET k4\r\n")
	a.expect("+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$2\r\nv4\r\n$2\r\nv4\r\n")
}

// TestLoopManyConnections: many connections with pipelines at once, each
// getting its own replies in order; INCRs from all of them add up.
func TestLoopManyConnections(t *testing.T) {
	ts := startTestServer(t, nil)
	needLoops(t, ts)
	const conns, rounds = 120, 5
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	raws := make([]*rawConn, conns)
	for i := range raws {
		raws[i] = ts.raw(t)
	}
	for i, r := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range rounds {
				var req, want strings.Builder
				for k := range 10 {
					key := fmt.Sprintf("k:%d:%d:%d", i, j, k)
					val := strconv.Itoa(i*1000 + j*10 + k)
					fmt.Fprintf(&req, "SET %s %s\r\nGET %s\r\nINCR total\r\n", key, val, key)
					fmt.Fprintf(&want, "+OK\r\n$%d\r\n%s\r\n", len(val), val)
				}
				if _, err := r.conn.Write([]byte(req.String())); err != nil {
					errs <- err
					return
				}
				got, err := readReplies(r, 30)
				if err != nil {
					errs <- fmt.Errorf("connection %d round %d: %v", i, j, err)
					return
				}
				var plain strings.Builder
				for n, rep := range got {
					if n%3 != 2 {
						plain.WriteString(rep)
					} else if !strings.HasPrefix(rep, ":") {
						errs <- fmt.Errorf("INCR answered %q", rep)
						return
					}
				}
				if plain.String() != want.String() {
					errs <- fmt.Errorf("connection %d round %d: %q, want %q", i, j, plain.String(), want.String())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := ts.raw(t)
	r.send("GET total\r\n")
	total := strconv.Itoa(conns * rounds * 10)
	r.expect("$" + strconv.Itoa(len(total)) + "\r\n" + total + "\r\n")
}

// readReplies reads n single-line or bulk replies.
func readReplies(r *rawConn, n int) ([]string, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []string
	tmp := make([]byte, 4096)
	for len(out) < n {
		if rep, rest, ok := nextReply(r.buf); ok {
			out = append(out, rep)
			r.buf = rest
			continue
		}
		k, err := r.conn.Read(tmp)
		if err != nil {
			return out, fmt.Errorf("reading replies: %v (have %d of %d)", err, len(out), n)
		}
		r.buf = append(r.buf, tmp[:k]...)
	}
	return out, nil
}

// nextReply splits one simple, error, integer or bulk reply off b.
func nextReply(b []byte) (string, []byte, bool) {
	i := strings.Index(string(b), "\r\n")
	if i < 0 {
		return "", b, false
	}
	if b[0] != '$' {
		return string(b[:i+2]), b[i+2:], true
	}
	n, _ := strconv.Atoi(string(b[1:i]))
	if n < 0 {
		return string(b[:i+2]), b[i+2:], true
	}
	end := i + 2 + n + 2
	if len(b) < end {
		return "", b, false
	}
	return string(b[:end]), b[end:], true
}

// TestLoopCloseMidCommand: a client that leaves while its command runs
// (off the loop, or with half a request sent) leaks no connection; the
// command still completes.
func TestLoopCloseMidCommand(t *testing.T) {
	ts := startSlowServer(t, 200*time.Millisecond, nil)
	needLoops(t, ts)
	for range 3 {
		r := ts.raw(t)
		r.send("SET slow:gone v\r\nGET slow:gone\r\n")
		time.Sleep(20 * time.Millisecond)
		_ = r.conn.Close()
	}
	r := ts.raw(t)
	r.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc")
	time.Sleep(20 * time.Millisecond)
	_ = r.conn.Close()
	waitConnected(t, ts, 0)
	r = ts.raw(t)
	r.send("GET slow:gone\r\nGET k\r\n")
	r.expect("$1\r\nv\r\n$-1\r\n")
}

// TestLoopIdleTimeoutAndLimits: on the event loop, a connection idle past
// the timeout is closed, one running a slow command is not, and a request
// over a limit is answered with the Redis error before the close.
func TestLoopIdleTimeoutAndLimits(t *testing.T) {
	ts := startSlowServer(t, 400*time.Millisecond, func(c *Config) {
		c.IdleTimeout = 200 * time.Millisecond
		c.MaxBulk = 1 << 20
	})
	needLoops(t, ts)
	busy := ts.raw(t)
	busy.send("SET slow:idle v\r\n")
	busy.expect("+OK\r\n") // 400ms: not closed while its command ran
	busy.send("PING\r\n")
	busy.expect("+PONG\r\n")
	start := time.Now()
	busy.expectClosed()
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("closed after %v idle, timeout 200ms", d)
	}

	big := ts.raw(t)
	big.send("SET a 1\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$2000000\r\n")
	big.expect("+OK\r\n-ERR Protocol error: invalid bulk length\r\n")
	big.expectClosed()
	waitConnected(t, ts, 0)
}

// TestLoopSlowReader: a client that sends many requests without reading
// their large replies gets every reply, in order, once it reads; the
// server stops reading it meanwhile rather than buffering without bound.
func TestLoopSlowReader(t *testing.T) {
	ts := startTestServer(t, nil)
	needLoops(t, ts)
	r := ts.raw(t)
	val := strings.Repeat("v", 256<<10)
	r.send("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" + strconv.Itoa(len(val)) + "\r\n" + val + "\r\n")
	r.expect("+OK\r\n")
	const n = 40
	go func() {
		for i := range n {
			if _, err := r.conn.Write([]byte("GET big\r\nECHO " + strconv.Itoa(i) + "\r\n")); err != nil {
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	for i := range n {
		r.expect("$" + strconv.Itoa(len(val)) + "\r\n" + val + "\r\n")
		s := strconv.Itoa(i)
		r.expect("$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n")
	}
}

// TestLoopServerCloseDuringSlowCommand: Close lets a running command send
// its reply, then closes the connection.
func TestLoopServerCloseDuringSlowCommand(t *testing.T) {
	ts := startSlowServer(t, 300*time.Millisecond, nil)
	needLoops(t, ts)
	r := ts.raw(t)
	idle := ts.raw(t)
	idle.send("PING\r\n")
	idle.expect("+PONG\r\n")
	r.send("SET slow:close v\r\n")
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ts.srv.Close(ctx)
	}()
	r.expect("+OK\r\n")
	r.expectClosed()
	idle.expectClosed()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestTransportChoice: by default the event loops serve a server whose
// writes do not wait, and one whose writes wait too (the writes move their
// connection to a goroutine: TestLoopWritesKeepGoroutine).
func TestTransportChoice(t *testing.T) {
	fast := startTestServer(t, nil)
	needLoops(t, fast)
	waits := startTestServer(t, func(c *Config) { c.ConcurrentPipeline = true; c.Transport = "" })
	// Where the platform has loops (fast has), this server has them too.
	deadline := time.Now().Add(2 * time.Second)
	for loopCount(waits) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event loop where writes wait")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := waits.raw(t)
	r.send("SET a 1\r\nGET a\r\n")
	r.expect("+OK\r\n$1\r\n1\r\n")
	if n := loopHandOffs(waits); n != 1 {
		t.Fatalf("%d hand-offs of a write batch, want 1", n)
	}
}

// TestGoroutineTransport: the goroutine-per-connection transport still
// serves pipelines, limits and the idle timeout.
func TestGoroutineTransport(t *testing.T) {
	ts := startTestServer(t, func(c *Config) {
		c.Transport = TransportGoroutines
		c.IdleTimeout = 200 * time.Millisecond
		c.MaxBulk = 16
	})
	ts.srv.mu.Lock()
	loops := len(ts.srv.loops)
	ts.srv.mu.Unlock()
	if loops != 0 {
		t.Fatalf("%d event loops with the goroutine transport", loops)
	}
	r := ts.raw(t)
	r.send("SET a 1\r\nGET a\r\nPING\r\n")
	r.expect("+OK\r\n$1\r\n1\r\n+PONG\r\n")
	r.expectClosed()
	r = ts.raw(t)
	r.send("*2\r\n$3\r\nGET\r\n$17\r\n")
	r.expect("-ERR Protocol error: invalid bulk length\r\n")
	r.expectClosed()
}

// loopCount is the number of the server's event loops.
func loopCount(ts *testServer) int {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	return len(ts.srv.loops)
}

// loopHandOffs sums the batches the server's loops handed to goroutines.
func loopHandOffs(ts *testServer) int64 {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	var n int64
	for _, l := range ts.srv.loops {
		n += l.handOffs.Load()
	}
	return n
}

// TestLoopWritesKeepGoroutine: where writes wait, a connection's writes
// move it to a goroutine once, which keeps it while writes come (and
// waits for them in the netpoller); after stickyReads reads in a row it
// is back on the loop, and the next write moves it again. So do a pause
// longer than stickyIdle, a shutdown and CLIENT KILL while it waits.
func TestLoopWritesKeepGoroutine(t *testing.T) {
	ts := startSlowServer(t, time.Millisecond, func(c *Config) { c.Transport = "" })
	needLoops(t, ts)
	r := ts.raw(t)
	start := time.Now()
	for i := range 200 {
		r.send(fmt.Sprintf("SET k%d v%d\r\n", i, i))
		r.expect("+OK\r\n")
	}
	t.Logf("200 SETs one at a time: %v", time.Since(start))
	if n := loopHandOffs(ts); n != 1 {
		t.Fatalf("%d hand-offs for 200 writes in a row, want 1", n)
	}
	for i := range stickyReads + 10 {
		r.send(fmt.Sprintf("GET k%d\r\n", i))
		v := fmt.Sprintf("v%d", i)
		r.expect(fmt.Sprintf("$%d\r\n%s\r\n", len(v), v))
	}
	r.send("SET slow:a 1\r\n")
	r.expect("+OK\r\n")
	if n := loopHandOffs(ts); n != 2 {
		t.Fatalf("%d hand-offs after reads then a write, want 2", n)
	}
	// Idle past stickyIdle: back on the loop.
	time.Sleep(3 * stickyIdle)
	r.send("SET a 1\r\nGET a\r\n")
	r.expect("+OK\r\n$1\r\n1\r\n")
	if n := loopHandOffs(ts); n != 3 {
		t.Fatalf("%d hand-offs after an idle pause, want 3", n)
	}

	// CLIENT KILL of a connection whose goroutine waits for its input.
	victim := ts.raw(t)
	victim.send("CLIENT ID\r\nSET b 1\r\n")
	reps, err := readReplies(victim, 2)
	if err != nil || reps[1] != "+OK\r\n" {
		t.Fatalf("CLIENT ID, SET: %q, %v", reps, err)
	}
	r.send("CLIENT KILL ID " + strings.TrimPrefix(strings.TrimSpace(reps[0]), ":") + "\r\n")
	r.expect(":1\r\n")
	start = time.Now()
	victim.expectClosed()
	if d := time.Since(start); d > stickyIdle/2 {
		t.Errorf("killed connection closed after %v", d)
	}

	// Close while the goroutine waits: the connection closes at once.
	r.send("SET c 1\r\n")
	r.expect("+OK\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start = time.Now()
	if err := ts.srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r.expectClosed()
	if d := time.Since(start); d > stickyIdle/2 {
		t.Errorf("Close took %v with a connection waiting on a goroutine", d)
	}
}
