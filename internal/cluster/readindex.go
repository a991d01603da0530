package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// readRounds coalesces concurrent read-index requests: a request joins the
// next round, which starts once the round in flight has finished, so a
// round's answer is always fetched after every request of it arrived. Many
// linearizable reads then share one quorum check (on the leader) or one
// RPC to the leader (on a follower), instead of one each.
type readRounds struct {
	fetch   func(ctx context.Context) (uint64, error)
	timeout time.Duration // bounds one fetch

	mu       sync.Mutex
	next     *readRound
	inFlight bool
}

// readRound is one fetch and the requests waiting for it.
type readRound struct {
	done  chan struct{}
	index uint64
	err   error
}

// index returns a read index fetched after the call began.
func (r *readRounds) index(ctx context.Context) (uint64, error) {
	r.mu.Lock()
	round := r.next
	if round == nil {
		round = &readRound{done: make(chan struct{})}
		r.next = round
	}
	if !r.inFlight {
		r.start(ctx)
	}
	r.mu.Unlock()
	select {
	case <-round.done:
		return round.index, round.err
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: waiting for a read index: %w", ErrNoLeader, ctx.Err())
	}
}

// start runs the pending round; r.mu is held.
func (r *readRounds) start(ctx context.Context) {
	round := r.next
	r.next = nil
	r.inFlight = true
	go func() {
		// The round outlives the request that started it: others wait on it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		round.index, round.err = r.fetch(fctx)
		cancel()
		close(round.done)
		r.mu.Lock()
		r.inFlight = false
		if r.next != nil {
			r.start(ctx)
		}
		r.mu.Unlock()
	}()
}
