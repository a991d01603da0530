package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/mantisdb/mantisdb/storage"
)

// Consistency is how fresh a read must be.
type Consistency string

const (
	// Linearizable reads see every write acknowledged before they began,
	// from any node: the leader confirms with a quorum that it still leads,
	// and the reading node waits until it has applied what the leader had
	// committed.
	Linearizable Consistency = "linearizable"
	// Leader reads see what the leader has committed, without the quorum
	// round trip: a leader deposed by a partition may answer for up to an
	// election timeout.
	Leader Consistency = "leader"
	// Stale reads answer from this node's engine at once; they may miss
	// recent writes, and need no leader.
	Stale Consistency = "stale"
)

// ParseConsistency accepts "linearizable", "leader" or "stale".
func ParseConsistency(s string) (Consistency, error) {
	switch c := Consistency(s); c {
	case Linearizable, Leader, Stale:
		return c, nil
	}
	return "", fmt.Errorf("%w: consistency %q is not linearizable, leader or stale", storage.ErrInvalidArgument, s)
}

type consistencyKey struct{}

// WithConsistency returns a context whose reads on a cluster Engine use c
// instead of the node's default.
func WithConsistency(ctx context.Context, c Consistency) context.Context {
	return context.WithValue(ctx, consistencyKey{}, c)
}

func (e *Engine) consistency(ctx context.Context) Consistency {
	if c, ok := ctx.Value(consistencyKey{}).(Consistency); ok && c != "" {
		return c
	}
	return e.cfg.Consistency
}

// readBarrier returns once a read at ctx's consistency may be served from
// the local engine. Linearizable reads go through read rounds, so that
// concurrent reads share one read index.
func (e *Engine) readBarrier(ctx context.Context) error {
	level := e.consistency(ctx)
	if level == Stale {
		return e.checkOpen()
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	var idx uint64
	var err error
	if level == Linearizable {
		idx, err = e.linearReads.index(ctx)
	} else {
		idx, err = e.fetchReadIndex(ctx, false)
	}
	if err != nil {
		return err
	}
	return e.fsm.waitApplied(ctx, idx)
}

// fetchReadIndex asks the leader (this node or another) for a read index.
func (e *Engine) fetchReadIndex(ctx context.Context, verify bool) (uint64, error) {
	body := []byte{0}
	if verify {
		body[0] = 1
	}
	answer, err := e.toLeader(ctx, rpcReadIndex, body, true, func() ([]byte, error) {
		var idx uint64
		var err error
		if verify {
			idx, err = e.leaderReads.index(ctx)
		} else {
			idx, err = e.leaderReadIndex(ctx, false)
		}
		return binary.BigEndian.AppendUint64(nil, idx), err
	})
	if err != nil {
		return 0, err
	}
	if len(answer) != 8 {
		return 0, fmt.Errorf("cluster: read index answer of %d bytes", len(answer))
	}
	return binary.BigEndian.Uint64(answer), nil
}

// leaderReadIndex is the index a read must wait for, answered by the
// leader. It is the leader's commit index: any node may already have
// applied an entry committed there, even before the leader's own engine
// did, so a read that waits for less could miss a value another read
// already returned. Entries of earlier terms are covered by the barrier
// this leader ran when its term began. With verify, a quorum confirms
// afterwards that this node still led when it read its commit index, so no
// newer leader can have committed entries it misses.
//
// The index returned is the last entry at or below the commit index that
// the FSM applies (fsmIndexAtOrBelow): the FSM never sees raft's no-op and
// barrier entries, so a node waiting for one of those would wait until the
// next write.
func (e *Engine) leaderReadIndex(ctx context.Context, verify bool) (uint64, error) {
	term, err := e.termBarrier(ctx)
	if err != nil {
		return 0, err
	}
	commit := e.raft.CommitIndex()
	if verify {
		if err := e.raft.VerifyLeader().Error(); err != nil {
			return 0, fmt.Errorf("%w: %v", errNotLeader, err)
		}
	}
	if e.raft.CurrentTerm() != term || !e.isLeader() {
		return 0, errNotLeader
	}
	return e.fsmIndexAtOrBelow(commit)
}

// fsmIndexAtOrBelow returns the index of the last entry at or below idx
// that the FSM applies (a command or a configuration), or this node's
// applied index when no such entry lies above it. A node whose applied
// index reaches the answer holds every entry up to idx.
func (e *Engine) fsmIndexAtOrBelow(idx uint64) (uint64, error) {
	floor := e.fsm.applied.Load()
	var l raft.Log
	for i := idx; i > floor; i-- {
		if err := e.logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("cluster: read raft log entry %d for a read index: %w", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i, nil
		}
	}
	return floor, nil
}

// termBarrier makes sure this leader has applied every entry of earlier
// terms, once per term, and returns the term.
func (e *Engine) termBarrier(ctx context.Context) (uint64, error) {
	if !e.isLeader() {
		return 0, errNotLeader
	}
	term := e.raft.CurrentTerm()
	if e.readyTerm.Load() == term {
		return term, nil
	}
	e.barrierMu.Lock()
	defer e.barrierMu.Unlock()
	if e.readyTerm.Load() == term {
		return term, nil
	}
	timeout := e.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := e.raft.Barrier(timeout).Error(); err != nil {
		return 0, fmt.Errorf("%w: barrier of term %d: %v", errNotLeader, term, err)
	}
	if e.raft.CurrentTerm() != term {
		return 0, errNotLeader
	}
	e.readyTerm.Store(term)
	return term, nil
}
