package clusterfault

import (
	"context"
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"
)

// DemoResult is what the read demonstrations showed.
type DemoResult struct {
	// StaleCaught: a stale read from a follower cut off from the leader
	// returned the old value after a newer write was acknowledged, and the
	// checker rejected that history.
	StaleCaught bool
	// IsolatedRefused: a linearizable read on that follower failed instead
	// of answering.
	IsolatedRefused bool
	// DeposedRefused: a leader cut off from the others, after they elected
	// a new leader that acknowledged a write, refused a linearizable read.
	DeposedRefused bool
	Notes          []string
}

// demo runs the read demonstrations on the settled cluster.
func (h *harness) demo(ctx context.Context) (DemoResult, error) {
	var res DemoResult
	stale := newHTTPClient(3*time.Second, "stale")
	lin := newHTTPClient(3*time.Second, "linearizable")
	leader, err := waitStable(ctx, h.probe, h.nodes, 20*time.Second)
	if err != nil {
		return res, err
	}
	f := h.nodes[(leader.index+1)%len(h.nodes)]
	if err := putSettled(ctx, lin, leader.httpAddr, "demo/k", "before"); err != nil {
		return res, fmt.Errorf("demo put: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := stale.get(ctx, f.httpAddr, "demo/k")
		if err == nil && v == "before" {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%s did not apply the demo write", f.id)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The follower is cut off; the leader and the third node go on.
	h.faults.isolate(f.index, len(h.nodes), link{mode: linkBlackhole})
	var hist []porcupine.Operation
	call := h.now()
	// Retries keep one operation in the history: it spans every attempt.
	if err := putSettled(ctx, lin, leader.httpAddr, "demo/k", "after"); err != nil {
		h.faults.heal()
		return res, fmt.Errorf("demo put with one follower cut off: %w", err)
	}
	hist = append(hist, porcupine.Operation{ClientId: 0, Input: kvInput{Kind: opPut, Key: "demo/k", Value: "after"}, Call: call, Output: kvOutput{}, Return: h.now()})
	call = h.now()
	v, err := stale.get(ctx, f.httpAddr, "demo/k")
	if err == nil {
		hist = append(hist, porcupine.Operation{ClientId: 1, Input: kvInput{Kind: opGet, Key: "demo/k"}, Call: call, Output: kvOutput{Value: v}, Return: h.now()})
		r := checkHistory(hist, 10*time.Second)
		res.StaleCaught = !r.Linearized && !r.TimedOut
		res.Notes = append(res.Notes, fmt.Sprintf("stale read on cut-off %s returned %q after %q was acknowledged; checker linearizable=%v", f.id, v, "after", r.Linearized))
	}
	if v, err := lin.get(ctx, f.httpAddr, "demo/k"); err != nil {
		res.IsolatedRefused = true
		res.Notes = append(res.Notes, fmt.Sprintf("linearizable read on cut-off %s refused: %v", f.id, shortErr(err)))
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("linearizable read on cut-off %s answered %q", f.id, v))
	}
	h.faults.heal()
	if leader, err = waitStable(ctx, h.probe, h.nodes, 20*time.Second); err != nil {
		return res, err
	}

	// The leader is cut off; the others elect a new one, which takes a write.
	_, term := leaderNow(ctx, h.probe, h.nodes)
	h.faults.isolate(leader.index, len(h.nodes), link{mode: linkBlackhole})
	nem := &nemesis{h: h}
	if _, _, err := nem.awaitNewLeader(ctx, leader, term, 20*time.Second); err != nil {
		h.faults.heal()
		return res, err
	}
	other := h.nodes[(leader.index+1)%len(h.nodes)]
	if err := putSettled(ctx, lin, other.httpAddr, "demo/d", "new"); err != nil {
		h.faults.heal()
		return res, fmt.Errorf("demo put on the new majority: %w", err)
	}
	if v, err := lin.get(ctx, leader.httpAddr, "demo/d"); err != nil {
		res.DeposedRefused = true
		res.Notes = append(res.Notes, fmt.Sprintf("linearizable read on the deposed leader %s refused: %v", leader.id, shortErr(err)))
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("linearizable read on the deposed leader %s answered %q", leader.id, v))
	}
	h.faults.heal()
	_, err = waitStable(ctx, h.probe, h.nodes, 20*time.Second)
	return res, err
}

// putSettled puts key = value through addr, trying again for up to 10 s
// while the cluster settles: right after an election a forwarded write
// may meet a connection to the old leader and end with its outcome
// unknown. Putting the same value again is harmless to what the
// demonstrations check, which is only how reads answer afterwards.
func putSettled(ctx context.Context, c *httpClient, addr, key, value string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.put(ctx, addr, key, value)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}
