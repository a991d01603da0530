package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// testNode is one node of a test cluster with its data directory.
type testNode struct {
	id  string
	dir string
	e   *Engine
}

// testCluster runs nodes over real TCP on 127.0.0.1.
type testCluster struct {
	t     *testing.T
	nodes []*testNode
	tune  func(*Config)
}

func testConfig(id string) Config {
	cfg := Config{
		NodeID:       id,
		RaftAddr:     "127.0.0.1:0",
		Engine:       "memory",
		EngineConfig: storage.DefaultConfig(),
		// Raft's own, patient timing: a loaded machine running the race
		// detector must not see elections nothing caused.
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: time.Second,
		ApplyTimeout:       10 * time.Second,
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return cfg
}

// newTestCluster starts n nodes: the first bootstraps, the others join it.
func newTestCluster(t *testing.T, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, tune: tune}
	for i := range n {
		c.add(fmt.Sprintf("n%d", i+1), i == 0)
	}
	t.Cleanup(c.closeAll)
	c.waitLeader()
	return c
}

// add starts a new node with a fresh directory, joining the cluster unless bootstrap.
func (c *testCluster) add(id string, bootstrap bool) *testNode {
	c.t.Helper()
	n := &testNode{id: id, dir: filepath.Join(c.t.TempDir(), id)}
	c.nodes = append(c.nodes, n)
	c.start(n, bootstrap)
	return n
}

// start (re)starts node n on its directory and a fresh port.
func (c *testCluster) start(n *testNode, bootstrap bool) {
	c.t.Helper()
	cfg := testConfig(n.id)
	cfg.Bootstrap = bootstrap
	if !bootstrap {
		for _, o := range c.nodes {
			if o != n && o.e != nil && o.e.checkOpen() == nil {
				cfg.Join = o.e.RaftAddr()
				break
			}
		}
	}
	if n.e != nil {
		// A restart keeps the address: it is in the cluster's configuration.
		cfg.RaftAddr = n.e.RaftAddr()
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s): %v", n.id, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err = e.Init(n.dir)
		if err == nil || time.Now().After(deadline) {
			break
		}
		// A restarted node's port may still be held briefly; try again.
		e, _ = New(cfg)
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("Init(%s): %v", n.id, err)
	}
	n.e = e
}

// startJoining starts a new node that joins through via.
func (c *testCluster) startJoining(n, via *testNode) {
	c.t.Helper()
	tune := c.tune
	c.tune = func(cfg *Config) {
		if tune != nil {
			tune(cfg)
		}
		cfg.Join = via.e.RaftAddr()
	}
	defer func() { c.tune = tune }()
	c.start(n, false)
}

func (c *testCluster) closeAll() {
	for _, n := range c.nodes {
		if n.e != nil {
			_ = n.e.Close()
		}
	}
}

// live returns the open nodes.
func (c *testCluster) live() []*testNode {
	var out []*testNode
	for _, n := range c.nodes {
		if n.e != nil && n.e.checkOpen() == nil {
			out = append(out, n)
		}
	}
	return out
}

// waitLeader waits until the live nodes agree on one leader among them and
// returns it.
func (c *testCluster) waitLeader() *testNode {
	c.t.Helper()
	// Generous: make test runs this package beside the fault and crash
	// harnesses' server processes, with the race detector, on 2 cores.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var leader *testNode
		agree := true
		for _, n := range c.live() {
			if n.e.isLeader() {
				if leader != nil {
					agree = false
				}
				leader = n
			}
		}
		if leader != nil && agree {
			_, id := leader.e.raft.LeaderWithID()
			ok := string(id) == leader.id
			for _, n := range c.live() {
				if _, lid := n.e.raft.LeaderWithID(); string(lid) != leader.id {
					ok = false
				}
			}
			if ok {
				return leader
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var states []string
	for _, n := range c.live() {
		_, lid := n.e.raft.LeaderWithID()
		st := n.e.raft.Stats()
		states = append(states, fmt.Sprintf("%s: %s, term %s, leader %q, last contact %s", n.id, n.e.raft.State(), st["term"], lid, st["last_contact"]))
	}
	c.t.Fatalf("no single leader within 30s: %s", strings.Join(states, "; "))
	return nil
}

func (c *testCluster) follower() *testNode {
	leader := c.waitLeader()
	for _, n := range c.live() {
		if n != leader {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func (c *testCluster) node(id string) *testNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

func mustPut(t *testing.T, e storage.StorageEngine, k, v string) {
	t.Helper()
	if err := e.Put(t.Context(), k, v); err != nil {
		t.Fatalf("Put(%q) on %s: %v", k, e.(*Engine).NodeID(), err)
	}
}

func wantGet(t *testing.T, ctx context.Context, e *Engine, k, want string) {
	t.Helper()
	got, err := e.Get(ctx, k)
	if err != nil || got != want {
		t.Fatalf("Get(%q) on %s = %q, %v; want %q", k, e.NodeID(), got, err, want)
	}
}

// eventually retries f until it returns nil or 10s pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestElectionForwardingAndReads(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower()

	// A write on a follower is forwarded; a linearizable read anywhere sees it.
	mustPut(t, f.e, "k", "from-follower")
	for _, n := range c.live() {
		wantGet(t, t.Context(), n.e, "k", "from-follower")
		wantGet(t, WithConsistency(t.Context(), Leader), n.e, "k", "from-follower")
	}
	mustPut(t, leader.e, "k", "from-leader")
	wantGet(t, t.Context(), f.e, "k", "from-leader")
	// Stale reads catch up without a leader round trip.
	eventually(t, "stale read on the follower", func() error {
		v, err := f.e.Get(WithConsistency(t.Context(), Stale), "k")
		if err != nil || v != "from-leader" {
			return fmt.Errorf("got %q, %v", v, err)
		}
		return nil
	})

	// The leader stops; the others elect a new one and keep serving.
	oldTerm := leader.e.raft.CurrentTerm()
	if err := leader.e.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	next := c.waitLeader()
	t.Logf("new leader %s after %v", next.id, time.Since(start).Round(time.Millisecond))
	if next.e.raft.CurrentTerm() <= oldTerm {
		t.Fatalf("new leader's term %d is not above %d", next.e.raft.CurrentTerm(), oldTerm)
	}
	for _, n := range c.live() {
		mustPut(t, n.e, "after-"+n.id, "v")
	}
	for _, n := range c.live() {
		for _, m := range c.live() {
			wantGet(t, t.Context(), n.e, "after-"+m.id, "v")
		}
		wantGet(t, t.Context(), n.e, "k", "from-leader")
	}

	// With one of three nodes left there is no quorum: writes and
	// linearizable reads fail with ErrNoLeader instead of hanging, and stale
	// reads still answer.
	c.follower().e.Close()
	last := c.live()[0]
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := last.e.Put(ctx, "lonely", "v"); !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("Put without a quorum: %v, want ErrNoLeader or ErrUnknownOutcome", err)
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel2()
	if _, err := last.e.Get(ctx2, "k"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("linearizable Get without a quorum: %v, want ErrNoLeader", err)
	}
	wantGet(t, WithConsistency(t.Context(), Stale), last.e, "k", "from-leader")
}

func TestTransactionsValidatedInApply(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower()
	ctx := t.Context()
	mustPut(t, leader.e, "acct", "10")

	// A transaction on a follower conflicts with a write on the leader
	// committed after it read.
	tx, err := f.e.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tx.Get("acct"); err != nil || v != "10" {
		t.Fatalf("txn Get = %q, %v", v, err)
	}
	mustPut(t, leader.e, "acct", "10") // same value: still a new version
	if err := tx.Put("acct", "11"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Commit after a concurrent write: %v, want ErrConflict", err)
	}

	// Increments from every node through transactions lose no update.
	const per = 15
	errs := make(chan error, 3)
	for _, n := range c.live() {
		go func(e *Engine) {
			for i := 0; i < per; {
				tx, err := e.BeginTransaction(ctx)
				if err != nil {
					errs <- err
					return
				}
				v, err := tx.Get("acct")
				if err != nil {
					errs <- err
					return
				}
				var x int
				fmt.Sscan(v, &x)
				_ = tx.Put("acct", fmt.Sprint(x+1))
				err = tx.Commit()
				if errors.Is(err, storage.ErrConflict) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				i++
			}
			errs <- nil
		}(n.e)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.live() {
		wantGet(t, ctx, n.e, "acct", fmt.Sprint(10+3*per))
	}
}

func TestSnapshotInstallToLaggingNode(t *testing.T) { testSnapshotInstall(t, "memory") }

// testSnapshotInstall stops a follower, writes far past what the leader's
// log keeps, and restarts the follower: it must catch up by snapshot.
func testSnapshotInstall(t *testing.T, engine string) *testCluster {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Engine = engine
		cfg.SnapshotThreshold = 50
		cfg.TrailingLogs = 10
		cfg.SnapshotInterval = 100 * time.Millisecond
	})
	leader := c.waitLeader()
	lag := c.follower()
	mustPut(t, leader.e, "before", "1")
	wantGet(t, t.Context(), lag.e, "before", "1")
	if err := lag.e.Close(); err != nil {
		t.Fatal(err)
	}
	// Far more entries than the log keeps after a snapshot.
	for i := range 300 {
		if err := leader.e.Write(t.Context(), []storage.BatchOp{
			{Kind: storage.OpPut, Key: fmt.Sprintf("k%03d", i), Value: fmt.Sprint(i)},
			{Kind: storage.OpPut, Key: fmt.Sprintf("ttl%03d", i), Value: "t", TTL: time.Hour},
		}); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, leader.e, "before", "2")
	if err := leader.e.raft.Snapshot().Error(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	first, err := leader.e.bolt.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= lag.e.fsm.applied.Load() {
		t.Fatalf("the leader's log still starts at %d, at or below the lagging node's %d", first, lag.e.fsm.applied.Load())
	}
	// The node's engine (empty for the memory engine, behind for a durable
	// one) catches up from the leader's snapshot.
	c.start(lag, false)
	eventually(t, "the lagging node catches up", func() error {
		v, err := lag.e.Get(WithConsistency(t.Context(), Stale), "before")
		if err != nil || v != "2" {
			return fmt.Errorf("before = %q, %v", v, err)
		}
		return nil
	})
	for i := range 300 {
		wantGet(t, WithConsistency(t.Context(), Stale), lag.e, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
	}
	got, err := lag.e.BatchGet(t.Context(), []string{"ttl000", "ttl299"})
	if err != nil || len(got) != 2 {
		t.Fatalf("TTL keys after the install: %v, %v", got, err)
	}
	if n := lag.e.fsm.restores.Load(); n != 1 {
		t.Fatalf("the lagging node installed %d snapshots, want 1", n)
	}
	return c
}

func TestRestartEveryNode(t *testing.T) { testRestartEveryNode(t, "memory") }

func testRestartEveryNode(t *testing.T, engine string) *testCluster {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.Engine = engine })
	leader := c.waitLeader()
	for i := range 50 {
		mustPut(t, leader.e, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	for _, n := range c.nodes {
		if err := n.e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		c.start(n, false)
	}
	c.waitLeader()
	for _, n := range c.nodes {
		for i := range 50 {
			wantGet(t, t.Context(), n.e, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
		}
		mustPut(t, n.e, "after-"+n.id, "v")
	}
	return c
}

func TestRemoveAndRejoinWithNewID(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	mustPut(t, leader.e, "k", "v")
	gone := c.follower()
	if err := gone.e.Close(); err != nil {
		t.Fatal(err)
	}
	// Removal works from any node, and names an existing member.
	via := c.follower()
	if err := via.e.Remove(t.Context(), gone.id); err != nil {
		t.Fatalf("Remove(%s) through %s: %v", gone.id, via.id, err)
	}
	if err := via.e.Remove(t.Context(), gone.id); !errors.Is(err, ErrNotVoter) {
		t.Fatalf("second Remove: %v, want ErrNotVoter", err)
	}
	st, err := leader.e.Status(t.Context())
	if err != nil || len(st.Members) != 2 {
		t.Fatalf("Status after removal: %d members, %v", len(st.Members), err)
	}
	// Two of two must agree now; writes go on.
	mustPut(t, via.e, "k2", "v2")

	// The machine comes back with a wiped disk and a new id, and joins
	// through a follower, which passes the request to the leader.
	fresh := &testNode{id: gone.id + "b", dir: filepath.Join(t.TempDir(), "fresh")}
	c.nodes = append(c.nodes, fresh)
	c.startJoining(fresh, c.follower())
	wantGet(t, t.Context(), fresh.e, "k", "v")
	wantGet(t, t.Context(), fresh.e, "k2", "v2")
	st, err = fresh.e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 {
		t.Fatalf("members after rejoin: %+v", st.Members)
	}
	for _, m := range st.Members {
		if !m.Reachable || m.ID == gone.id {
			t.Fatalf("member after rejoin: %+v", m)
		}
	}
	// Leadership moves on request.
	if err := fresh.e.TransferLeadership(t.Context(), fresh.id); err != nil {
		t.Fatalf("TransferLeadership to %s: %v", fresh.id, err)
	}
	if l := c.waitLeader(); l != fresh {
		t.Fatalf("leader after transfer is %s, want %s", l.id, fresh.id)
	}
	mustPut(t, leader.e, "k3", "v3")
	wantGet(t, t.Context(), fresh.e, "k3", "v3")
}

// failingEngine fails every Write once armed.
type failingEngine struct {
	storage.StorageEngine
	fail bool
}

func (f *failingEngine) Write(ctx context.Context, ops []storage.BatchOp) error {
	if f.fail {
		return fmt.Errorf("%w: simulated", storage.ErrNoSpace)
	}
	return f.StorageEngine.Write(ctx, ops)
}

func entryLog(t *testing.T, index uint64, c command) *raft.Log {
	t.Helper()
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: c.stamp(time.Now()).encode()}
}

func newTestFSM(t *testing.T) (*fsm, *failingEngine, chan error) {
	t.Helper()
	mem := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := mem.Init(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	fe := &failingEngine{StorageEngine: mem}
	stopped := make(chan error, 1)
	f, err := newFSM(&localStore{name: "memory"}, fe, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1})), func(err error) { stopped <- err })
	if err != nil {
		t.Fatal(err)
	}
	return f, fe, stopped
}

func put(k, v string) command { return command{kind: kindProposal, ops: []op{{key: k, value: v}}} }

func TestApplyBatchSkipsAppliedEntries(t *testing.T) {
	f, fe, _ := newTestFSM(t)
	answers := f.ApplyBatch([]*raft.Log{entryLog(t, 1, put("a", "1")), entryLog(t, 2, put("b", "1"))})
	if answers[0] != nil || answers[1] != nil || f.applied.Load() != 2 {
		t.Fatalf("answers %v, applied %d", answers, f.applied.Load())
	}
	if idx, _ := readApplied(fe); idx != 2 {
		t.Fatalf("stored applied index %d, want 2", idx)
	}
	// A replay after a restart re-delivers entries 1..2: they are skipped,
	// entry 3 is applied; a changed entry 2 would show if it were not.
	f2, _, _ := newTestFSMOver(t, fe)
	f2.ApplyBatch([]*raft.Log{entryLog(t, 1, put("a", "old")), entryLog(t, 2, put("b", "old")), entryLog(t, 3, put("c", "1"))})
	for k, want := range map[string]string{"a": "1", "b": "1", "c": "1"} {
		raw, err := fe.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := decodeRecord(k, raw)
		if r.value != want {
			t.Fatalf("%s = %q, want %q", k, r.value, want)
		}
	}
	if f2.puts.Load() != 1 {
		t.Fatalf("puts after the replay = %d, want 1", f2.puts.Load())
	}
	// A conditional entry sees the writes of earlier entries in its batch.
	cas := command{kind: kindProposal, conds: []cond{{key: "c", version: 3}}, ops: []op{{key: "c", value: "2"}}}
	stale := command{kind: kindProposal, conds: []cond{{key: "c", version: 3}}, ops: []op{{key: "c", value: "3"}}}
	answers = f2.ApplyBatch([]*raft.Log{entryLog(t, 4, cas), entryLog(t, 5, stale)})
	if answers[0] != nil || !errors.Is(answers[1].(error), storage.ErrConflict) {
		t.Fatalf("answers %v, want nil and a conflict", answers)
	}
}

func newTestFSMOver(t *testing.T, fe *failingEngine) (*fsm, *failingEngine, chan error) {
	t.Helper()
	stopped := make(chan error, 1)
	f, err := newFSM(&localStore{name: "memory"}, fe, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1})), func(err error) { stopped <- err })
	if err != nil {
		t.Fatal(err)
	}
	return f, fe, stopped
}

func TestApplyEngineFailureStopsTheNode(t *testing.T) {
	f, fe, stopped := newTestFSM(t)
	f.ApplyBatch([]*raft.Log{entryLog(t, 1, put("a", "1"))})
	fe.fail = true
	answers := f.ApplyBatch([]*raft.Log{entryLog(t, 2, put("a", "2"))})
	if err, _ := answers[0].(error); !errors.Is(err, ErrStopped) || !errors.Is(err, storage.ErrNoSpace) {
		t.Fatalf("answer %v, want ErrStopped wrapping ErrNoSpace", answers[0])
	}
	select {
	case <-stopped:
	case <-time.After(time.Second):
		t.Fatal("the node was not stopped")
	}
	// Later entries are refused, never skipped past: the applied index
	// stays where the engine has it.
	fe.fail = false
	answers = f.ApplyBatch([]*raft.Log{entryLog(t, 3, put("b", "1"))})
	if err, _ := answers[0].(error); !errors.Is(err, ErrStopped) {
		t.Fatalf("answer after the stop %v, want ErrStopped", answers[0])
	}
	if idx, _ := readApplied(fe); idx != 1 || f.applied.Load() != 1 {
		t.Fatalf("applied index %d (stored %d), want 1", f.applied.Load(), idx)
	}
	if _, err := fe.Get(t.Context(), "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("entry 3 reached the engine after the stop: %v", err)
	}
}
