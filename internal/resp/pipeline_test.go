package resp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// countingEngine counts the engine Writes and fails those that touch the
// key poison, as an engine refusing one write would.
type countingEngine struct {
	storage.StorageEngine
	writes atomic.Int64
	mu     sync.Mutex
	sizes  []int
}

var errPoison = errors.New("invalid argument: the test engine refuses key poison")

func (e *countingEngine) Write(ctx context.Context, ops []storage.BatchOp) error {
	e.writes.Add(1)
	e.mu.Lock()
	e.sizes = append(e.sizes, len(ops))
	e.mu.Unlock()
	for _, op := range ops {
		if op.Key == "poison" {
			return errPoison
		}
	}
	return e.StorageEngine.Write(ctx, ops)
}

// startCountingServer is startTestServer over a countingEngine.
func startCountingServer(t *testing.T, concurrent bool) (*testServer, *countingEngine) {
	t.Helper()
	var ce *countingEngine
	ts := startTestServer(t, func(c *Config) {
		ce = &countingEngine{StorageEngine: c.Store.Engine()}
		c.Store = kv.New(ce)
		c.ConcurrentPipeline = concurrent
	})
	return ts, ce
}

// bothDispatches runs f against a server dispatching pipelines in order
// and one dispatching them concurrently: the replies must be the same.
func bothDispatches(t *testing.T, f func(t *testing.T, ts *testServer, ce *countingEngine)) {
	for _, concurrent := range []bool{false, true} {
		t.Run("concurrent="+strconv.FormatBool(concurrent), func(t *testing.T) {
			ts, ce := startCountingServer(t, concurrent)
			f(t, ts, ce)
		})
	}
}

// TestPipelineReadsSeeEarlierWrites: a read pipelined after a batched
// write of its key sees it, and a later write of the same key in the same
// batch wins.
func TestPipelineReadsSeeEarlierWrites(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, _ *countingEngine) {
		c := ts.raw(t)
		c.send("SET a 1\r\nSET b 2\r\nGET a\r\nSET a 3\r\nSET a 4\r\nGET a\r\n" +
			"MSET a 5 c 6\r\nMGET a b c\r\nSETEX e 100 x\r\nTTL e\r\nSET a 7\r\nAPPEND a 8\r\nGET a\r\n")
		c.expect("+OK\r\n+OK\r\n$1\r\n1\r\n+OK\r\n+OK\r\n$1\r\n4\r\n" +
			"+OK\r\n*3\r\n$1\r\n5\r\n$1\r\n2\r\n$1\r\n6\r\n+OK\r\n:100\r\n+OK\r\n:2\r\n$2\r\n78\r\n")
	})
}

// TestPipelineConditionalAfterBlind: SET NX, SETNX, SET XX, SET GET and
// INCR after a blind SET of the same key in one pipeline see that SET.
func TestPipelineConditionalAfterBlind(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, _ *countingEngine) {
		c := ts.raw(t)
		c.send("SET k 1\r\nSET k 2 NX\r\nSETNX k 3\r\nSET k 4 XX\r\nSET k 5 GET\r\nSET n 10\r\nINCR n\r\n" +
			"SET k 6 KEEPTTL\r\nSET m 1 nx\r\nGET k\r\nGET m\r\n")
		c.expect("+OK\r\n$-1\r\n:0\r\n+OK\r\n$1\r\n4\r\n+OK\r\n:11\r\n+OK\r\n+OK\r\n$1\r\n6\r\n$1\r\n1\r\n")
	})
}

// TestPipelineErrorsMidBatch: a command answering an error in the middle
// of a run of blind writes answers only its own error; the others write.
func TestPipelineErrorsMidBatch(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, _ *countingEngine) {
		c := ts.raw(t)
		c.send("SET a 1\r\nSET b 2 EX 0\r\nSET c 3 FOO\r\nMSET d\r\nSET\r\nNOSUCH x\r\nSET e 5 PX abc\r\nSETEX f -1 v\r\nSET g 7\r\nMGET a b c d e f g\r\n")
		c.expect("+OK\r\n" +
			"-ERR invalid expire time in 'set' command\r\n" +
			"-ERR syntax error\r\n" +
			"-ERR wrong number of arguments for 'mset' command\r\n" +
			"-ERR wrong number of arguments for 'set' command\r\n" +
			"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n" +
			"-ERR value is not an integer or out of range\r\n" +
			"-ERR invalid expire time in 'setex' command\r\n" +
			"+OK\r\n" +
			"*7\r\n$1\r\n1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$1\r\n7\r\n")
	})
}

// TestPipelineEngineErrorMidBatch: when the engine refuses the batch's
// Write, its commands run one by one, so only the refused one fails.
func TestPipelineEngineErrorMidBatch(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, ce *countingEngine) {
		c := ts.raw(t)
		c.send("SET a 1\r\nSET poison 2\r\nSET b 3\r\nMGET a poison b\r\n")
		c.expect("+OK\r\n-ERR " + errPoison.Error() + "\r\n+OK\r\n*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n")
		info := ts.client(t, 3).Info(t.Context(), "commandstats").Val()
		line := ""
		for _, l := range strings.Split(info, "\r\n") {
			if strings.HasPrefix(l, "cmdstat_set:") {
				line = l
			}
		}
		if !strings.HasPrefix(line, "cmdstat_set:calls=3,") || !strings.HasSuffix(line, ",failed_calls=1") {
			t.Errorf("commandstats after a replayed batch: %q", line)
		}
	})
}

// TestPipelineMultiInside: MULTI inside a pipeline queues the commands
// after it rather than batching them, and EXEC sees the writes before it.
func TestPipelineMultiInside(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, _ *countingEngine) {
		c := ts.raw(t)
		c.send("SET x 1\r\nSET y 1\r\nMULTI\r\nSET x 2\r\nINCR y\r\nGET x\r\nEXEC\r\nSET x 3\r\nGET x\r\nMULTI\r\nSET z 1\r\nSET z\r\nEXEC\r\nGET z\r\n")
		c.expect("+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n$1\r\n3\r\n" +
			"+OK\r\n+QUEUED\r\n-ERR wrong number of arguments for 'set' command\r\n" +
			"-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n")
	})
}

// TestPipelineWatchSeesBatchedWrite: a batched SET from one connection
// aborts another connection's EXEC watching the key.
func TestPipelineWatchSeesBatchedWrite(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, _ *countingEngine) {
		a, b := ts.raw(t), ts.raw(t)
		a.send("WATCH w\r\n")
		a.expect("+OK\r\n")
		b.send("SET v 1\r\nSET w 1\r\nMSET u 1 t 2\r\n")
		b.expect("+OK\r\n+OK\r\n+OK\r\n")
		a.send("MULTI\r\nSET w 2\r\nEXEC\r\nGET w\r\n")
		a.expect("+OK\r\n+QUEUED\r\n*-1\r\n$1\r\n1\r\n")
	})
}

// TestPipelineBlindRunIsOneWrite: a pipelined run of blind writes is one
// engine Write; a read in the middle splits it in two.
func TestPipelineBlindRunIsOneWrite(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, ce *countingEngine) {
		c := ts.raw(t)
		const n = 32
		var req, want strings.Builder
		for i := range n {
			req.WriteString("SET key:" + strconv.Itoa(i) + " v\r\n")
			want.WriteString("+OK\r\n")
		}
		before := ce.writes.Load()
		// One Write call of the client: the server reads it as one batch.
		c.send(req.String())
		c.expect(want.String())
		// A run could split only where a read of the socket ends.
		if got := ce.writes.Load() - before; got > 2 {
			t.Fatalf("%d pipelined SETs made %d engine Writes, want 1", n, got)
		}
		before = ce.writes.Load()
		c.send("SET p 1\r\nSETEX q 100 2\r\nGET p\r\nMSET r 3 s 4\r\nPSETEX s 100000 5\r\n")
		c.expect("+OK\r\n+OK\r\n$1\r\n1\r\n+OK\r\n+OK\r\n")
		if got := ce.writes.Load() - before; got != 2 {
			t.Fatalf("blind writes split by a GET made %d engine Writes, want 2", got)
		}
		ce.mu.Lock()
		last := ce.sizes[len(ce.sizes)-1]
		ce.mu.Unlock()
		if last != 3 {
			t.Fatalf("the last Write had %d ops, want 3 (MSET r s, PSETEX s)", last)
		}
	})
}

// TestClientKillSelf: CLIENT KILL of the caller's own connection answers,
// closes the connection and runs nothing pipelined after it (Redis 7.0).
func TestClientKillSelf(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, _ *countingEngine) {
		c := ts.raw(t)
		c.send("CLIENT ID\r\n")
		line := readLine(t, c)
		id := strings.TrimPrefix(line, ":")
		c.send("SET before 1\r\nCLIENT KILL ID " + id + " SKIPME no\r\nSET after 1\r\nPING\r\n")
		c.expect("+OK\r\n:1\r\n")
		c.expectClosed()
		o := ts.raw(t)
		o.send("EXISTS before after\r\nCLIENT ID\r\n")
		o.expect(":1\r\n")
		oid := strings.TrimPrefix(readLine(t, o), ":")
		// SKIPME yes (the default) never kills the caller.
		o.send("CLIENT KILL ID " + oid + "\r\nCLIENT KILL ID " + oid + " SKIPME yes\r\nPING\r\n")
		o.expect(":0\r\n:0\r\n+PONG\r\n")
	})
}

// readLine reads one CRLF-terminated reply line, without the CRLF.
func readLine(t *testing.T, c *rawConn) string {
	t.Helper()
	var b strings.Builder
	for {
		buf := make([]byte, 1)
		if len(c.buf) > 0 {
			buf[0], c.buf = c.buf[0], c.buf[1:]
		} else if _, err := c.conn.Read(buf); err != nil {
			t.Fatalf("reading a line: %v", err)
		}
		b.WriteByte(buf[0])
		if s := b.String(); strings.HasSuffix(s, "\r\n") {
			return strings.TrimSuffix(s, "\r\n")
		}
	}
}

// slowCommitEngine holds every transaction's commit for a while and
// records how many were waiting at once, as commits waiting for their
// sync under --sync always do.
type slowCommitEngine struct {
	storage.StorageEngine
	inFlight, most atomic.Int64
}

type slowTxn struct {
	storage.Transaction
	e *slowCommitEngine
}

func (e *slowCommitEngine) BeginTransaction(ctx context.Context) (storage.Transaction, error) {
	tx, err := e.StorageEngine.BeginTransaction(ctx)
	if err != nil {
		return nil, err
	}
	return &slowTxn{Transaction: tx, e: e}, nil
}

func (t *slowTxn) Commit() error {
	n := t.e.inFlight.Add(1)
	for {
		m := t.e.most.Load()
		if n <= m || t.e.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(3 * time.Millisecond)
	t.e.inFlight.Add(-1)
	return t.Transaction.Commit()
}

// TestPipelineWaveGoroutinesBounded: concurrent dispatch runs the writes
// of pipelined waves concurrently, but never more at once in the whole
// server than its wave slots plus one per connection.
func TestPipelineWaveGoroutinesBounded(t *testing.T) {
	var se *slowCommitEngine
	ts := startTestServer(t, func(c *Config) {
		se = &slowCommitEngine{StorageEngine: c.Store.Engine()}
		c.Store = kv.New(se)
		c.ConcurrentPipeline = true
	})
	const conns, depth = 4, 100
	clients := make([]*rawConn, conns)
	var want strings.Builder
	for j := 0; j < depth; j++ {
		want.WriteString(":1\r\n")
	}
	for i := range clients {
		clients[i] = ts.raw(t)
		var req strings.Builder
		for j := range depth {
			req.WriteString("INCR c" + strconv.Itoa(i) + ":" + strconv.Itoa(j) + "\r\n")
		}
		clients[i].send(req.String())
	}
	for _, c := range clients {
		c.expect(want.String())
	}
	most, bound := se.most.Load(), int64(cap(ts.srv.waveSlots)+conns)
	if most > bound {
		t.Fatalf("%d commits waited at once, more than %d wave slots + %d connections", most, cap(ts.srv.waveSlots), conns)
	}
	if most <= conns {
		t.Fatalf("at most %d commits waited at once: the waves did not run concurrently", most)
	}
	t.Logf("at most %d of %d commits at once (bound %d)", most, conns*depth, bound)
}

// TestClientListAfterPipeline: CLIENT LIST shows the last command of a
// pipeline and the MULTI state it left, and a client's own CLIENT INFO
// names CLIENT INFO, as in Redis.
func TestClientListAfterPipeline(t *testing.T) {
	bothDispatches(t, func(t *testing.T, ts *testServer, _ *countingEngine) {
		a := ts.raw(t)
		a.send("CLIENT ID\r\n")
		id := strings.TrimPrefix(readLine(t, a), ":")
		b := ts.client(t, 2)
		line := func() string {
			t.Helper()
			out, err := b.Do(t.Context(), "CLIENT", "LIST", "ID", id).Text()
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		a.send("SET a 1\r\nGET a\r\n")
		a.expect("+OK\r\n$1\r\n1\r\n")
		if l := line(); !strings.Contains(l, " flags=N ") || !strings.Contains(l, " multi=-1 ") || !strings.Contains(l, " cmd=get ") {
			t.Errorf("after SET, GET: %q", l)
		}
		a.send("MULTI\r\nSET b 1\r\n")
		a.expect("+OK\r\n+QUEUED\r\n")
		if l := line(); !strings.Contains(l, " flags=x ") || !strings.Contains(l, " multi=1 ") || !strings.Contains(l, " cmd=set ") {
			t.Errorf("after MULTI, SET: %q", l)
		}
		a.send("DISCARD\r\nCLIENT INFO\r\n")
		a.expect("+OK\r\n")
		if info := readLine(t, a); !strings.HasPrefix(info, "$") {
			t.Fatalf("CLIENT INFO reply %q", info)
		}
		if info := readLine(t, a); !strings.Contains(info, " cmd=client|info ") || !strings.Contains(info, " multi=-1 ") {
			t.Errorf("own CLIENT INFO: %q", info)
		}
	})
}
