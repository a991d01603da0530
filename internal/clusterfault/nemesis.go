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
		var before map[*node]nodeFigures
		if f == killLeader {
			before = n.survivorFigures(ctx, target)
		}
		start := time.Now()
		if err := target.kill(); err != nil {
			return "", err
		}
		if f == killLeader {
			d, winner, err := n.awaitNewLeader(ctx, target, term, 20*time.Second)
			if err != nil {
				return "", err
			}
			e := election{took: d}
			after := n.survivorFigures(ctx, target)
			for nd, b := range before {
				if a, ok := after[nd]; ok {
					e.candidacies += a.candidacies - b.candidacies
					e.preVotes += a.preVotes - b.preVotes
					e.votes += a.votes - b.votes
				}
			}
			if w, ok := after[winner]; ok && w.won > 0 && w.won < d {
				e.detect, e.won, e.silent = d-w.won, w.won, w.detect
			}
			h.recordElection(e)
			what = fmt.Sprintf("%s killed, new leader after %v (%s)", target.id, d.Round(time.Millisecond), e.detail())
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
// oldTerm, and returns how long that took and the new leader.
func (n *nemesis) awaitNewLeader(ctx context.Context, dead *node, oldTerm uint64, timeout time.Duration) (time.Duration, *node, error) {
	start := time.Now()
	for time.Since(start) < timeout {
		for _, nd := range n.h.nodes {
			if nd == dead {
				continue
			}
			f, err := n.h.fast.figures(ctx, nd.httpAddr)
			if err == nil && f.leader && f.term > oldTerm {
				return time.Since(start), nd, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, nil, fmt.Errorf("no new leader within %v of killing %s", timeout, dead.id)
}

// survivorFigures reads the figures of every live node but dead.
func (n *nemesis) survivorFigures(ctx context.Context, dead *node) map[*node]nodeFigures {
	out := make(map[*node]nodeFigures)
	for _, nd := range n.h.nodes {
		if nd == dead || !nd.alive() {
			continue
		}
		if f, err := n.h.probe.figures(ctx, nd.httpAddr); err == nil {
			out[nd] = f
		}
	}
	return out
}

// election is one new leader after a kill of the old one: how long it
// took, and what the survivors' counters say happened in between.
type election struct {
	took time.Duration
	// detect is the time from the kill to the winner's candidacy, won from
	// its candidacy to leading (zero when the server does not report it).
	detect, won time.Duration
	// silent is how long the winner had not heard from a leader when it
	// stood, by its own clock: detect minus silent is the time between the
	// last heartbeat and the kill plus the harness's polling delay.
	silent time.Duration
	// candidacies, preVotes, votes: how often the survivors stood, and the
	// pre-vote and vote requests they received. One clean round is one
	// candidacy, one pre-vote and one vote request; more mean refused
	// pre-votes (the other still followed the dead leader) or split votes.
	candidacies, preVotes, votes uint64
}

func (e election) detail() string {
	s := fmt.Sprintf("%d candidacies, %d pre-vote and %d vote requests", e.candidacies, e.preVotes, e.votes)
	if e.won > 0 {
		s = fmt.Sprintf("winner stood %v after the kill (%v without a leader by its clock), won %v later; ",
			e.detect.Round(time.Millisecond), e.silent.Round(time.Millisecond), e.won.Round(time.Millisecond)) + s
	}
	return s
}
