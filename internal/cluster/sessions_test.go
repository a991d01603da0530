package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

func TestCommandExtensionsRoundTrip(t *testing.T) {
	p := command{kind: kindProposal, conds: []cond{{key: "a", version: 0}}, ops: []op{{key: "a", value: "1"}},
		session: "n1.ab.3", seq: 42, readIndex: 17, readMs: 1_700_000_000_000}
	got, err := decodeCommand(p.encode())
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	e := p.stamp(time.Now())
	if e.session != p.session || e.seq != p.seq || e.readIndex != p.readIndex || e.readMs != p.readMs {
		t.Fatalf("stamp dropped the extensions: %+v", e)
	}
	b := p.encode()
	for i := range len(b) {
		if _, err := decodeCommand(b[:i]); err == nil && i > 0 {
			// Cutting exactly before an extension leaves a valid command
			// without it; anything else must fail.
			if c, _ := decodeCommand(b[:i]); c.session == p.session && c.readMs == p.readMs {
				t.Fatalf("a command cut to %d of %d bytes decoded whole", i, len(b))
			}
		}
	}
	if _, err := decodeCommand(append(append([]byte(nil), b...), 9)); err == nil {
		t.Fatal("an unknown extension decoded")
	}
}

// sessionEntry is c in session s with sequence number seq.
func sessionEntry(c command, s string, seq uint64) command {
	c.session, c.seq = s, seq
	return c
}

// recordOf reads key's stored record from the engine.
func recordOf(t *testing.T, e storage.StorageEngine, key string) (record, bool) {
	t.Helper()
	raw, err := e.Get(context.Background(), key)
	if errors.Is(err, storage.ErrNotFound) {
		return record{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRecord(key, raw)
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

// TestApplyDeduplicatesSessionEntries: a copy of an applied entry changes
// nothing and answers the first answer, also after a restart of the fsm
// and in an engine loaded from a snapshot.
func TestApplyDeduplicatesSessionEntries(t *testing.T) {
	f, fe, _ := newTestFSM(t)
	// Create k only if absent: applied twice, the second would conflict.
	create := command{kind: kindProposal, conds: []cond{{key: "k", version: 0}}, ops: []op{{key: "k", value: "1"}}}
	first := sessionEntry(create, "n1.x.1", 1)
	answers := f.ApplyBatch([]*raft.Log{entryLog(t, 1, first), entryLog(t, 2, first)})
	if answers[0] != nil || answers[1] != nil {
		t.Fatalf("answers %v, want nil twice (the copy answers the first answer)", answers)
	}
	if r, _ := recordOf(t, fe, "k"); r.version != 1 || r.value != "1" {
		t.Fatalf("k = %+v, want version 1 (applied once)", r)
	}
	// The next write of the session conflicts; its copy answers the
	// conflict again and does not apply either.
	again := sessionEntry(create, "n1.x.1", 2)
	answers = f.ApplyBatch([]*raft.Log{entryLog(t, 3, again)})
	if err, _ := answers[0].(error); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second create: %v, want a conflict", answers[0])
	}
	// After a restart (a new fsm over the same engine) the session is
	// still known.
	f2, _, _ := newTestFSMOver(t, fe)
	answers = f2.ApplyBatch([]*raft.Log{entryLog(t, 4, again), entryLog(t, 5, first)})
	if err, _ := answers[0].(error); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("copy of the conflicting write after a restart: %v, want the recorded conflict", answers[0])
	}
	if err, _ := answers[1].(error); !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("copy of an older write: %v, want ErrUnknownOutcome", answers[1])
	}
	if r, _ := recordOf(t, fe, "k"); r.version != 1 {
		t.Fatalf("k's version %d after the copies, want 1", r.version)
	}
	if d := f.duplicates.Load() + f2.duplicates.Load(); d != 3 {
		t.Fatalf("duplicates counted %d, want 3", d)
	}

	// A snapshot carries the session records: an engine loaded from it
	// refuses the copy too.
	snap, err := f2.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).write(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	mem := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := mem.Init(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	r := &checksumReader{r: bufio.NewReader(&buf), h: crc32.New(castagnoli)}
	index, err := readSnapshotHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadSnapshot(r, mem, index); err != nil {
		t.Fatal(err)
	}
	f3, _, _ := newTestFSMOver(t, &failingEngine{StorageEngine: mem})
	answers = f3.ApplyBatch([]*raft.Log{entryLog(t, 6, again)})
	if err, _ := answers[0].(error); !errors.Is(err, storage.ErrConflict) || f3.duplicates.Load() != 1 {
		t.Fatalf("copy after a snapshot install: %v (duplicates %d), want the recorded conflict", answers[0], f3.duplicates.Load())
	}
	// The cluster's own records stay out of the user's view.
	s, err := (&Engine{cfg: Config{Engine: "memory"}, fsm: f3, stopped: make(chan struct{})}).localStats(t)
	if err != nil || s != 1 {
		t.Fatalf("user keys counted %d, %v; want 1", s, err)
	}
}

// localStats is Stats' key count over f's engine.
func (e *Engine) localStats(t *testing.T) (uint64, error) {
	e.state.Store(int32(stateOpen))
	s, err := e.Stats(t.Context())
	return s.Keys, err
}

// TestApplyRefusesAbsentKeyCreatedAndDeleted: a transaction that read a key
// absent conflicts when the key was created and deleted after its
// snapshot, or created with an expiry that has passed; not when it was
// deleted before the snapshot; and is refused once too old to judge.
func TestApplyRefusesAbsentKeyCreatedAndDeleted(t *testing.T) {
	f, _, _ := newTestFSM(t)
	now := time.Now()
	apply := func(index uint64, c command, at time.Time) any {
		t.Helper()
		l := &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: c.stamp(at).encode()}
		return f.ApplyBatch([]*raft.Log{l})[0]
	}
	// The transaction read "ghost" absent at index 1; it writes "other".
	txn := func(readIndex uint64, readAt time.Time) command {
		return command{kind: kindProposal, conds: []cond{{key: "ghost", version: 0}}, ops: []op{{key: "other", value: "x"}},
			readIndex: readIndex, readMs: readAt.UnixMilli()}
	}
	apply(1, put("unrelated", "1"), now)
	apply(2, put("ghost", "a"), now)
	apply(3, command{kind: kindProposal, ops: []op{{del: true, key: "ghost"}}}, now)
	if err, _ := apply(4, txn(1, now), now).(error); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("commit after a create and delete of a key read absent: %v, want a conflict", err)
	}
	// Read after the delete: no conflict.
	if a := apply(5, txn(3, now), now); a != nil {
		t.Fatalf("commit of a transaction that read after the delete: %v", a)
	}
	// Created with an expiry that passed before the commit.
	apply(6, command{kind: kindProposal, ops: []op{{key: "ghost", value: "b", expiry: now.Add(time.Second).UnixMilli(), abs: true}}}, now)
	if err, _ := apply(7, txn(5, now), now.Add(2*time.Second)).(error); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("commit after a create that expired: %v, want a conflict", err)
	}
	// A transaction too old to judge.
	later := now.Add(txnMaxAge + time.Second)
	if err, _ := apply(8, txn(7, now), later).(error); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("commit of a transaction %v old: %v, want a conflict", txnMaxAge+time.Second, err)
	}
	// A proposal without a read point keeps the version-only check.
	plain := command{kind: kindProposal, conds: []cond{{key: "ghost2", version: 0}}, ops: []op{{key: "other", value: "y"}}}
	if a := apply(9, plain, later); a != nil {
		t.Fatalf("plain conditional write: %v", a)
	}
	// A node catching up applies old entries long after their clock: the
	// tombstone must still decide as it did on the leader.
	old := now.Add(-time.Hour)
	apply(10, put("late", "1"), old)
	apply(11, command{kind: kindProposal, ops: []op{{del: true, key: "late"}}}, old)
	late := command{kind: kindProposal, conds: []cond{{key: "late", version: 0}}, ops: []op{{key: "other", value: "z"}},
		readIndex: 9, readMs: old.UnixMilli()}
	if err, _ := apply(12, late, old).(error); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("an old entry replayed after a create and delete: %v, want a conflict", err)
	}
}

// TestTransactionSeesAbsentKeyCreatedAndDeleted: over real nodes, a
// transaction on a follower that read a key absent fails when another
// node created and deleted the key before the commit.
func TestTransactionSeesAbsentKeyCreatedAndDeleted(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower()
	ctx := t.Context()
	run := func(between func()) error {
		tx, err := f.e.BeginTransaction(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Get("ghost"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("txn Get(ghost) = %v, want ErrNotFound", err)
		}
		between()
		if err := tx.Put("witness", "set"); err != nil {
			t.Fatal(err)
		}
		return tx.Commit()
	}
	if err := run(func() { mustPut(t, leader.e, "unrelated", "1") }); err != nil {
		t.Fatalf("commit after an unrelated write: %v", err)
	}
	err := run(func() {
		mustPut(t, leader.e, "ghost", "boo")
		if err := leader.e.Delete(ctx, "ghost"); err != nil {
			t.Fatal(err)
		}
	})
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("commit after ghost was created and deleted: %v, want ErrConflict", err)
	}
}

// TestRetriedWriteAppliedOnce: the leader applies a forwarded increment
// and the connection is cut before its answer; the follower sends it
// again under the same session, and the increment counts once. Without
// sessions the copy would conflict (its read version moved) and the
// caller, retrying on conflicts as kv.Update does, would count twice.
func TestRetriedWriteAppliedOnce(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower()
	ctx := t.Context()
	mustPut(t, leader.e, "counter", "0")
	wantGet(t, ctx, f.e, "counter", "0")

	var dropped atomic.Int32
	hook := func(method byte) bool {
		return (method == rpcPropose || method == rpcProposeBatch) && dropped.CompareAndSwap(0, 1)
	}
	dropAnswerHook.Store(&hook)
	defer dropAnswerHook.Store(nil)

	conflicts := 0
	for {
		tx, err := f.e.BeginTransaction(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, err := tx.Get("counter")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		fmt.Sscan(v, &n)
		_ = tx.Put("counter", fmt.Sprint(n+1))
		err = tx.Commit()
		if errors.Is(err, storage.ErrConflict) {
			if conflicts++; conflicts > 5 {
				t.Fatalf("conflicts without end: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("increment: %v", err)
		}
		break
	}
	if dropped.Load() != 1 {
		t.Fatal("no answer was dropped: the test did not test a lost answer")
	}
	if conflicts != 0 {
		t.Fatalf("the retried increment conflicted %d times", conflicts)
	}
	for _, n := range c.live() {
		wantGet(t, ctx, n.e, "counter", "1")
	}
	resent, _ := f.e.SessionFigures()
	_, dups := leader.e.SessionFigures()
	if resent < 1 || dups < 1 {
		t.Fatalf("resent %d, duplicates %d; want at least 1 each", resent, dups)
	}
	if !strings.HasPrefix(f.e.sessions.prefix, f.id+".") {
		t.Fatalf("session prefix %q", f.e.sessions.prefix)
	}
}

// BenchmarkApplyBatchSessions measures what sessions add to Apply: raft
// batches of 64 puts, without sessions and with one session per entry
// (as 64 concurrent writers would send them), on the memory engine.
func BenchmarkApplyBatchSessions(b *testing.B) {
	for _, withSession := range []bool{false, true} {
		name := "plain"
		if withSession {
			name = "sessions"
		}
		b.Run(name, func(b *testing.B) {
			mem := storage.NewMemoryEngine(storage.DefaultConfig())
			if err := mem.Init(""); err != nil {
				b.Fatal(err)
			}
			defer mem.Close()
			f, err := newFSM(&localStore{name: "memory"}, mem, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			var index uint64
			seq := make([]uint64, 64)
			logs := make([]*raft.Log, 64)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range logs {
					index++
					c := command{kind: kindProposal, ops: []op{{key: fmt.Sprintf("k%d", (i*64+j)%10000), value: "value-of-some-length"}}}
					if withSession {
						seq[j]++
						c.session, c.seq = fmt.Sprintf("n1.0123456789abcdef.%d", j), seq[j]
					}
					logs[j] = &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: c.stamp(now).encode()}
				}
				for _, a := range f.ApplyBatch(logs) {
					if a != nil {
						b.Fatal(a)
					}
				}
			}
		})
	}
}
