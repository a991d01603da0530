package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// deferringEngine is a memory engine whose writes under a commit deferral
// leave a ticket instead of being durable at once: a model of the Rust
// engine under --sync always (storage.CommitAwaiter). Writes of a key
// containing "lost" get a ticket whose sync fails. With hold set,
// AwaitCommit waits for a value on it before it answers; with slow set,
// writes of keys containing "slow" take 20 ms.
type deferringEngine struct {
	*storage.MemoryEngine
	hold chan struct{}
	slow bool

	mu       sync.Mutex
	next     uint64
	awaited  uint64 // every ticket up to it was awaited
	lost     map[uint64]bool
	early    []string // reads that ran while a deferred write was not awaited
	awaits   int
	deferred int
}

var errLostSync = errors.New("sync failed: input/output error")

func newDeferringEngine(t *testing.T) *deferringEngine {
	t.Helper()
	mem := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := mem.Init(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	return &deferringEngine{MemoryEngine: mem, lost: make(map[uint64]bool)}
}

// ticket gives a write a ticket when its context defers it.
func (e *deferringEngine) ticket(ctx context.Context, keys ...string) {
	d := storage.CommitDeferralFrom(ctx)
	if d == nil {
		return
	}
	e.mu.Lock()
	e.next++
	t := e.next
	e.deferred++
	for _, k := range keys {
		if strings.Contains(k, "lost") {
			e.lost[t] = true
		}
	}
	e.mu.Unlock()
	d.Defer(t)
}

func (e *deferringEngine) Write(ctx context.Context, ops []storage.BatchOp) error {
	if e.slow {
		e.slowWrites(ops)
	}
	if err := e.MemoryEngine.Write(ctx, ops); err != nil {
		return err
	}
	keys := make([]string, len(ops))
	for i, op := range ops {
		keys[i] = op.Key
	}
	e.ticket(ctx, keys...)
	return nil
}

func (e *deferringEngine) IncrBy(ctx context.Context, key string, delta int64) (int64, error) {
	n, err := e.MemoryEngine.IncrBy(ctx, key, delta)
	if err == nil {
		e.ticket(ctx, key)
	}
	return n, err
}

func (e *deferringEngine) Get(ctx context.Context, key string) (string, error) {
	e.mu.Lock()
	if e.awaited < e.next {
		e.early = append(e.early, key)
	}
	e.mu.Unlock()
	return e.MemoryEngine.Get(ctx, key)
}

func (e *deferringEngine) DefersCommits() bool { return true }

func (e *deferringEngine) AwaitCommit(ticket uint64) error {
	if e.hold != nil {
		<-e.hold
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.awaits++
	e.awaited = max(e.awaited, ticket)
	for t := range e.lost {
		if t <= ticket {
			return errLostSync
		}
	}
	return nil
}

func (e *deferringEngine) CommitOutcome(ticket uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lost[ticket] {
		return errLostSync
	}
	return nil
}

// startDeferringServer serves an engine that defers commits (a
// deferringEngine, or the Rust engine under --sync always) as the server
// does: the loops run plain writes and acknowledge them after one
// AwaitCommit per pass.
func startDeferringServer(t *testing.T, e storage.StorageEngine) *testServer {
	t.Helper()
	ts := startTestServer(t, func(c *Config) {
		c.Store = kv.New(e)
		c.ConcurrentPipeline = true
		c.Transport = ""
	})
	needLoops(t, ts)
	if ts.srv.loopRuns != loopDefersWrites {
		t.Fatalf("loop policy %d, want loopDefersWrites", ts.srv.loopRuns)
	}
	return ts
}

// TestDeferredReplyWaitsForSync: a write's reply leaves only once the
// loop's wait for its sync returned.
func TestDeferredReplyWaitsForSync(t *testing.T) {
	e := newDeferringEngine(t)
	e.hold = make(chan struct{})
	ts := startDeferringServer(t, e)
	r := ts.raw(t)
	for i, cmd := range []string{"SET a 1\r\n", "INCR n\r\n", "MSET b 2 c 3\r\n"} {
		r.send(cmd)
		_ = r.conn.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		var b [64]byte
		if n, err := r.conn.Read(b[:]); err == nil {
			t.Fatalf("%q answered %q before its sync", cmd, b[:n])
		}
		_ = r.conn.SetReadDeadline(time.Time{})
		e.hold <- struct{}{}
		r.expect([]string{"+OK\r\n", ":1\r\n", "+OK\r\n"}[i])
	}
	if n := loopHandOffs(ts); n != 0 {
		t.Fatalf("%d batches handed off; plain writes run on the loop", n)
	}
}

// TestDeferredSyncFailure: when the sync of a pass fails, every write it
// lost answers the error its own wait would have returned; the others of
// the pass keep their replies, and so does a write that failed on its own.
func TestDeferredSyncFailure(t *testing.T) {
	e := newDeferringEngine(t)
	ts := startDeferringServer(t, e)
	r := ts.raw(t)
	lost := "-ERR " + errLostSync.Error() + "\r\n"
	// One pipeline: SET and SET share one engine Write (one ticket), the
	// INCR of a string fails by itself, the INCR of n has its own ticket.
	r.send("SET x 1\r\nSET lost:a abc\r\nINCR lost:a\r\nINCR n\r\nSET y 3\r\n")
	r.expect(lost + lost + "-ERR value is not an integer or out of range\r\n:1\r\n+OK\r\n")
	// Later writes do not inherit the failure.
	r.send("SET z 4\r\nINCR n\r\n")
	r.expect("+OK\r\n:2\r\n")
	r2 := ts.raw(t)
	r2.send("SET lost:b v\r\n")
	r2.expect(lost)
	c := ts.client(t, 3)
	ctx := context.Background()
	info := c.Info(ctx, "commandstats").Val()
	var set string
	for _, line := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(line, "cmdstat_set:") {
			set = line
		}
	}
	if !strings.Contains(set, "calls=5,") || !strings.HasSuffix(set, "failed_calls=3") {
		t.Fatalf("commandstats do not count the 3 lost SETs of 5 as failed: %q", set)
	}
}

// slowWrites makes the deferringEngine's writes of keys containing
// "slow" take a while, so that a connection's next request arrives while
// the loop still serves its write.
func (e *deferringEngine) slowWrites(ops []storage.BatchOp) {
	for _, op := range ops {
		if strings.Contains(op.Key, "slow") {
			time.Sleep(20 * time.Millisecond)
			return
		}
	}
}

// TestDeferredWritesSeenByTheirConnection: a read, or a batch handed to a
// goroutine, runs only once the connection's earlier writes were awaited:
// in one pipeline, and when the read comes in the same pass.
func TestDeferredWritesSeenByTheirConnection(t *testing.T) {
	e := newDeferringEngine(t)
	e.slow = true
	ts := startDeferringServer(t, e)
	r := ts.raw(t)
	for i := range 5 {
		v := fmt.Sprintf("v%d", i)
		r.send("SET slow:k " + v + "\r\n")
		time.Sleep(5 * time.Millisecond)
		r.send("GET slow:k\r\n")
		r.expect(fmt.Sprintf("+OK\r\n$%d\r\n%s\r\n", len(v), v))
	}
	// A write that fills the reader's first read, and a GET cut by its
	// end: the GET is a batch of its own, read in the same pass.
	pad := strings.Repeat("x", readerBuf-16)
	r.send("SET pad " + pad + "\r\nGET pad\r\n")
	r.expect(fmt.Sprintf("+OK\r\n$%d\r\n%s\r\n", len(pad), pad))
	if n := loopHandOffs(ts); n != 0 {
		t.Fatalf("%d batches handed off; writes and reads run on the loop", n)
	}
	// A batch that must run on a goroutine comes while a write waits.
	r.send("SET slow:p 1\r\n")
	time.Sleep(5 * time.Millisecond)
	r.send("SET q 1 NX\r\nGET slow:p\r\n")
	r.expect("+OK\r\n+OK\r\n$1\r\n1\r\n")
	if n := loopHandOffs(ts); n != 1 {
		t.Fatalf("%d batches handed off, want the one with SET NX", n)
	}
	// One pipeline mixing writes and reads runs on a goroutine, in order.
	r2 := ts.raw(t)
	r2.send("SET a 1\r\nINCR n\r\nGET a\r\nSET a 2\r\nGET a\r\n")
	r2.expect("+OK\r\n:1\r\n$1\r\n1\r\n+OK\r\n$1\r\n2\r\n")
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.early) > 0 {
		t.Fatalf("reads ran before the writes before them were awaited: %q", e.early)
	}
	if e.deferred < 6 {
		t.Fatalf("%d writes deferred: the loop did not defer", e.deferred)
	}
}

// TestDeferredWritesRustEngine: on the Rust engine under --sync always, a
// write acknowledged to one connection is visible to every other at once
// (the engine shows a commit only once it is durable), and concurrent
// INCRs of one key lose nothing.
func TestDeferredWritesRustEngine(t *testing.T) {
	if !storage.RustAvailable {
		t.Skip("the Rust engine is not built in (-tags rust)")
	}
	ts := startDeferringServer(t, openDefaultEngine(t, storage.SyncAlways))
	w, rd := ts.raw(t), ts.raw(t)
	for i := range 300 {
		v := strconv.Itoa(i)
		w.send("SET seen " + v + "\r\n")
		w.expect("+OK\r\n")
		rd.send("GET seen\r\n")
		rd.expect(fmt.Sprintf("$%d\r\n%s\r\n", len(v), v))
		w.send("INCR counted\r\n")
		w.expect(fmt.Sprintf(":%d\r\n", i+1))
		rd.send("GET counted\r\n")
		n := strconv.Itoa(i + 1)
		rd.expect(fmt.Sprintf("$%d\r\n%s\r\n", len(n), n))
	}
	if n := loopHandOffs(ts); n != 0 {
		t.Fatalf("%d batches handed off; plain writes and reads run on the loop", n)
	}
	const conns, each = 20, 100
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- incrTimes(ts.addr, "shared", each)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, err := ts.client(t, 3).Get(context.Background(), "shared").Int(); err != nil || got != conns*each {
		t.Fatalf("shared = %d (%v) after %d INCRs", got, err, conns*each)
	}
}

// incrTimes sends n INCRs of key on a connection of its own, one at a
// time, and checks that each answers an integer.
func incrTimes(addr, key string, n int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	for range n {
		if _, err := conn.Write([]byte("INCR " + key + "\r\n")); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, ":") {
			return fmt.Errorf("INCR %s answered %q", key, line)
		}
	}
	return nil
}
