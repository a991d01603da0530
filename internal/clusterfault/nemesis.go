package clusterfault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"
)

var errUnstable = errors.New("the cluster did not settle on one leader known to every node")

// fault is one kind of trouble the nemesis causes in a cycle.
type fault int

const (
	killLeader fault = iota
	killFollower
	pauseLeader
	pauseFollower
	isolateLeader
	isolateFollower
	cutLink
	delayNode
	numFaults
)

func (f fault) String() string {
	return [...]string{"kill -9 leader", "kill -9 follower", "SIGSTOP leader", "SIGSTOP follower",
		"isolate leader", "isolate follower", "cut leader-follower link", "delay a node's links"}[f]
}

// nemesis causes one fault per cycle and heals it.
type nemesis struct {
	h   *harness
	rng *rand.Rand
}

// between returns a random duration in [lo, hi).
func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// cycle runs fault f and heals it; it returns once the cluster is whole and
// stable again.
func (n *nemesis) cycle(ctx context.Context, f fault) (string, error) {
	h := n.h
	leader, term := leaderNow(ctx, h.probe, h.nodes)
	if leader == nil {
		var err error
		if leader, err = waitStable(ctx, h.probe, h.nodes, 15*time.Second); err != nil {
			return "", err
		}
		_, term = leaderNow(ctx, h.probe, h.nodes)
	}
	follower := h.nodes[(leader.index+1+n.rng.IntN(len(h.nodes)-1))%len(h.nodes)]
	var what string
	switch f {
	case killLeader, killFollower:
		target := follower
		if f == killLeader {
			target = leader
		}
		start := time.Now()
		if err := target.kill(); err != nil {
			return "", err
		}
		if f == killLeader {
			d, err := n.awaitNewLeader(ctx, target, term, 20*time.Second)
			if err != nil {
				return "", err
			}
			h.recordElection(d)
			what = fmt.Sprintf("%s killed, new leader after %v", target.id, d.Round(time.Millisecond))
		} else {
			what = target.id + " killed"
		}
		time.Sleep(n.between(300*time.Millisecond, time.Second) - min(time.Since(start), 300*time.Millisecond))
		if err := h.restart(ctx, target); err != nil {
			return "", err
		}
	case pauseLeader, pauseFollower:
		target := follower
		if f == pauseLeader {
			target = leader
		}
		d := n.between(time.Second, 2500*time.Millisecond)
		if err := target.signal(syscall.SIGSTOP); err != nil {
			return "", err
		}
		time.Sleep(d)
		if err := target.signal(syscall.SIGCONT); err != nil {
			return "", err
		}
		what = fmt.Sprintf("%s paused for %v", target.id, d.Round(time.Millisecond))
	case isolateLeader, isolateFollower, cutLink:
		target := follower
		if f == isolateLeader {
			target = leader
		}
		mode := linkDrop
		if n.rng.IntN(2) == 0 {
			mode = linkBlackhole
		}
		d := n.between(time.Second, 2500*time.Millisecond)
		if f == cutLink {
			h.faults.set(leader.index, follower.index, link{mode: mode})
			what = fmt.Sprintf("link %s-%s %v for %v", leader.id, follower.id, mode, d.Round(time.Millisecond))
		} else {
			h.faults.isolate(target.index, len(h.nodes), link{mode: mode})
			what = fmt.Sprintf("%s isolated (%v) for %v", target.id, mode, d.Round(time.Millisecond))
		}
		time.Sleep(d)
		h.faults.heal()
	case delayNode:
		target := h.nodes[n.rng.IntN(len(h.nodes))]
		delay := n.between(20*time.Millisecond, 100*time.Millisecond)
		d := n.between(time.Second, 2500*time.Millisecond)
		h.faults.isolate(target.index, len(h.nodes), link{delay: delay})
		time.Sleep(d)
		h.faults.heal()
		what = fmt.Sprintf("%s's links delayed %v for %v", target.id, delay.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	for _, nd := range h.nodes {
		if !nd.alive() {
			return what, fmt.Errorf("%s exited on its own during %q (see the server log)", nd.id, f)
		}
	}
	if _, err := waitStable(ctx, h.probe, h.nodes, 20*time.Second); err != nil {
		return what, fmt.Errorf("after %q: %w", what, err)
	}
	return what, nil
}

// awaitNewLeader polls the other nodes until one leads in a term above
// oldTerm, and returns how long that took.
func (n *nemesis) awaitNewLeader(ctx context.Context, dead *node, oldTerm uint64, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < timeout {
		for _, nd := range n.h.nodes {
			if nd == dead {
				continue
			}
			f, err := n.h.fast.figures(ctx, nd.httpAddr)
			if err == nil && f.leader && f.term > oldTerm {
				return time.Since(start), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("no new leader within %v of killing %s", timeout, dead.id)
}
