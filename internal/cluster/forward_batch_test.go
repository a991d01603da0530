package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Concurrent writes on a follower reach the leader in batches, and every
// caller gets its own answer.
func TestForwardedWritesTravelInBatches(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower()
	const writers, each = 48, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := f.e.Put(t.Context(), fmt.Sprintf("w%02d-%d", w, i), fmt.Sprint(w*100+i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("forwarded write: %v", err)
	}
	batches, proposals := f.e.batcher.batches.Load(), f.e.batcher.proposals.Load()
	t.Logf("%d proposals in %d batch RPCs", proposals, batches)
	if proposals != writers*each {
		t.Fatalf("%d proposals forwarded, want %d", proposals, writers*each)
	}
	if batches >= proposals {
		t.Fatalf("%d batch RPCs for %d proposals: nothing was batched", batches, proposals)
	}
	for w := range writers {
		for i := range each {
			wantGet(t, t.Context(), leader.e, fmt.Sprintf("w%02d-%d", w, i), fmt.Sprint(w*100+i))
		}
	}
}

// One batch RPC answers each of its proposals on its own: a failed
// condition or a malformed proposal fails alone, the others apply.
func TestProposeBatchAnswersEachProposal(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower()
	stale := command{kind: kindProposal, conds: []cond{{key: "x", version: 999}}, ops: []op{{key: "x", value: "cas"}}}
	notProposal := put("z", "1").stamp(time.Now()) // an entry: refused
	bodies := [][]byte{put("x", "1").encode(), stale.encode(), notProposal.encode(), put("y", "2").encode()}
	batch := make([]*pendingProposal, len(bodies))
	for i, b := range bodies {
		batch[i] = &pendingProposal{body: b, deadline: time.Now().Add(10 * time.Second)}
	}
	res := f.e.batcher.sendBatch(leader.e.RaftAddr(), batch)
	if res[0].err != nil || res[3].err != nil {
		t.Fatalf("plain puts in a batch: %v, %v", res[0].err, res[3].err)
	}
	if !errors.Is(res[1].err, storage.ErrConflict) {
		t.Fatalf("stale conditional put: %v, want ErrConflict", res[1].err)
	}
	if !errors.Is(res[2].err, storage.ErrInvalidArgument) {
		t.Fatalf("an entry sent as a proposal: %v, want ErrInvalidArgument", res[2].err)
	}
	for i, r := range res {
		if !r.sent {
			t.Fatalf("result %d not marked sent", i)
		}
	}
	wantGet(t, t.Context(), f.e, "x", "1")
	wantGet(t, t.Context(), f.e, "y", "2")
	if _, err := f.e.Get(t.Context(), "z"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the refused proposal was applied: %v", err)
	}
}

// A leader that does not know batches (an older version) answers the
// method as unknown without applying anything; the follower then sends
// that leader one proposal per RPC.
func TestProposeBatchFallsBackToSingleProposals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var singles, batches atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				if b, err := r.ReadByte(); err != nil || b != rpcMagic {
					return
				}
				for {
					method, _, err := readFrame(r)
					if err != nil {
						return
					}
					switch method {
					case rpcPropose:
						singles.Add(1)
						err = writeFrame(w, codeOK, nil)
					default:
						batches.Add(1)
						msg := fmt.Errorf("%w: unknown cluster rpc method %d", storage.ErrInvalidArgument, method).Error()
						err = writeFrame(w, codeInvalidArgument, []byte(msg))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	fwd := newForwarder()
	defer fwd.close()
	b := newProposalBatcher(fwd)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	addr := ln.Addr().String()
	for i := range 3 {
		if r := b.submit(ctx, addr, put(fmt.Sprint("k", i), "v").encode()); r.err != nil {
			t.Fatalf("write %d through the fallback: %v", i, r.err)
		}
	}
	if singles.Load() != 3 || batches.Load() != 1 {
		t.Fatalf("the old leader saw %d single and %d batch requests, want 3 and 1", singles.Load(), batches.Load())
	}
}

// takeBatch bounds a batch by count and bytes, and always takes at least
// one proposal, however large.
func TestTakeBatchBounds(t *testing.T) {
	var pending []*pendingProposal
	for range maxForwardBatch + 5 {
		pending = append(pending, &pendingProposal{body: make([]byte, 10)})
	}
	if got := takeBatch(&pending); len(got) != maxForwardBatch || len(pending) != 5 {
		t.Fatalf("batch of %d, %d left; want %d and 5", len(got), len(pending), maxForwardBatch)
	}
	big := []*pendingProposal{{body: make([]byte, maxForwardBatchBytes)}, {body: make([]byte, 1)}}
	if got := takeBatch(&big); len(got) != 1 || len(big) != 1 {
		t.Fatalf("a full-size proposal shared its batch: %d taken, %d left", len(got), len(big))
	}
}
