package clusterfault

import (
	"context"
	"sort"
	"sync"
	"time"
)

// monitor polls every node's leader flag and term, and records which nodes
// claimed leadership in each term: two in one term is a split brain.
type monitor struct {
	nodes  []*node
	client *httpClient

	mu      sync.Mutex
	leaders map[uint64]map[string]bool
	polls   int
}

func newMonitor(nodes []*node) *monitor {
	return &monitor{nodes: nodes, client: newHTTPClient(300*time.Millisecond, "stale"), leaders: make(map[uint64]map[string]bool)}
}

// run polls every period until ctx ends.
func (m *monitor) run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, n := range m.nodes {
			wg.Add(1)
			go func(n *node) {
				defer wg.Done()
				f, err := m.client.figures(ctx, n.httpAddr)
				if err == nil {
					m.record(n.id, f)
				}
			}(n)
		}
		wg.Wait()
	}
}

func (m *monitor) record(id string, f nodeFigures) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls++
	if !f.leader {
		return
	}
	if m.leaders[f.term] == nil {
		m.leaders[f.term] = make(map[string]bool)
	}
	m.leaders[f.term][id] = true
}

// splitTerms returns the terms in which more than one node claimed to lead.
func (m *monitor) splitTerms() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []uint64
	for term, ids := range m.leaders {
		if len(ids) > 1 {
			out = append(out, term)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// leaderNow returns the live node that leads with the highest term, asking
// each node once; nil when none answers as leader.
func leaderNow(ctx context.Context, c *httpClient, nodes []*node) (*node, uint64) {
	var best *node
	var bestTerm uint64
	for _, n := range nodes {
		if !n.alive() {
			continue
		}
		f, err := c.figures(ctx, n.httpAddr)
		if err == nil && f.leader && f.term >= bestTerm {
			best, bestTerm = n, f.term
		}
	}
	return best, bestTerm
}

// waitStable waits until every live node is reachable and one of them leads
// with a term all of them have reached, or timeout.
func waitStable(ctx context.Context, c *httpClient, nodes []*node, timeout time.Duration) (*node, error) {
	deadline := time.Now().Add(timeout)
	for {
		var leader *node
		var term uint64
		ok := true
		figs := make([]nodeFigures, len(nodes))
		for i, n := range nodes {
			f, err := c.figures(ctx, n.httpAddr)
			if err != nil {
				ok = false
				break
			}
			figs[i] = f
			if f.leader {
				if leader != nil {
					ok = false
				}
				leader, term = n, f.term
			}
		}
		if ok && leader != nil {
			for _, f := range figs {
				ok = ok && f.term == term
			}
			if ok {
				return leader, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, errUnstable
		}
		time.Sleep(50 * time.Millisecond)
	}
}
