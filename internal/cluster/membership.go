package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// Node ids are permanent: a removed node's id is not reused by raft's
// configuration history in this design, so a node that was removed (its
// data dir wiped or not) rejoins under a new id. Membership changes run on
// the leader; any node forwards them.

// joinTimeout bounds how long a starting node keeps asking to join.
const joinTimeout = 60 * time.Second

// join asks the member at cfg.Join to add this node as a voter.
func (e *Engine) join() error {
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	body := appendString(appendString(nil, e.cfg.NodeID), e.advAddr)
	backoff := 50 * time.Millisecond
	for {
		_, _, err := e.fwd.call(ctx, e.cfg.Join, rpcJoin, body)
		if err == nil {
			e.log.Info("cluster: joined", "via", e.cfg.Join)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: join through %s: %w", e.cfg.Join, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// Join adds the node id at raft address addr as a voter.
func (e *Engine) Join(ctx context.Context, id, addr string) error {
	if id == "" || addr == "" {
		return fmt.Errorf("%w: a join names a node id and its raft address", storage.ErrInvalidArgument)
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	_, err := e.toLeader(ctx, rpcJoin, appendString(appendString(nil, id), addr), true, func() ([]byte, error) {
		return nil, e.joinLocal(id, addr)
	})
	return err
}

func (e *Engine) joinLocal(id, addr string) error {
	if id == "" || addr == "" {
		return fmt.Errorf("%w: a join names a node id and its raft address", storage.ErrInvalidArgument)
	}
	if !e.isLeader() {
		return errNotLeader
	}
	cf := e.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id && string(s.Address) == addr {
			return nil // already a member: a retried join
		}
		if string(s.ID) == id || string(s.Address) == addr {
			return fmt.Errorf("%w: node id %q or address %s is already a member as %s at %s; remove it first, and rejoin under a new id", storage.ErrInvalidArgument, id, addr, s.ID, s.Address)
		}
	}
	if err := e.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, e.cfg.ApplyTimeout).Error(); err != nil {
		return leaderError(err)
	}
	e.log.Info("cluster: added a voter", "id", id, "addr", addr)
	return nil
}

// Remove takes node id out of the cluster for good.
func (e *Engine) Remove(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: remove names a node id", storage.ErrInvalidArgument)
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	_, err := e.toLeader(ctx, rpcRemove, appendString(nil, id), true, func() ([]byte, error) {
		return nil, e.removeLocal(id)
	})
	return err
}

func (e *Engine) removeLocal(id string) error {
	if !e.isLeader() {
		return errNotLeader
	}
	cf := e.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	found := false
	for _, s := range cf.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrNotVoter, id)
	}
	if err := e.raft.RemoveServer(raft.ServerID(id), 0, e.cfg.ApplyTimeout).Error(); err != nil {
		return leaderError(err)
	}
	e.log.Info("cluster: removed a member", "id", id)
	return nil
}

// TransferLeadership asks the leader to hand leadership to node id, or to
// any up-to-date voter when id is empty, and returns once it did.
func (e *Engine) TransferLeadership(ctx context.Context, id string) error {
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	_, err := e.toLeader(ctx, rpcTransfer, appendString(nil, id), false, func() ([]byte, error) {
		return nil, e.transferLocal(id)
	})
	return err
}

func (e *Engine) transferLocal(id string) error {
	if !e.isLeader() {
		return errNotLeader
	}
	var f raft.Future
	if id == "" {
		f = e.raft.LeadershipTransfer()
	} else {
		cf := e.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return err
		}
		var addr raft.ServerAddress
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == id {
				addr = s.Address
			}
		}
		if addr == "" {
			return fmt.Errorf("%w: %q", ErrNotVoter, id)
		}
		if id == e.cfg.NodeID {
			return nil
		}
		f = e.raft.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: leadership transfer: %w", err)
	}
	return nil
}

func leaderError(err error) error {
	if err == raft.ErrNotLeader || err == raft.ErrLeadershipLost {
		return fmt.Errorf("%w: %v", errNotLeader, err)
	}
	return err
}

// nodeProgress is one node's view of itself, answered to rpcStatus.
type nodeProgress struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastContact  string `json:"last_contact,omitempty"`
}

func (p nodeProgress) encode() []byte {
	b, _ := json.Marshal(p)
	return b
}

func (e *Engine) progress() nodeProgress {
	p := nodeProgress{
		ID:           e.cfg.NodeID,
		State:        e.raft.State().String(),
		Term:         e.raft.CurrentTerm(),
		LastIndex:    e.raft.LastIndex(),
		CommitIndex:  e.raft.CommitIndex(),
		AppliedIndex: e.fsm.applied.Load(),
	}
	if t := e.raft.LastContact(); !t.IsZero() && p.State != raft.Leader.String() {
		p.LastContact = time.Since(t).Round(time.Millisecond).String()
	}
	return p
}

// Member is one node of the cluster's configuration, with its progress
// when it answered.
type Member struct {
	ID        string `json:"id"`
	Address   string `json:"address"`
	Voter     bool   `json:"voter"`
	Leader    bool   `json:"leader"`
	Self      bool   `json:"self"`
	Reachable bool   `json:"reachable"`
	// State, Term and AppliedIndex are the member's own answer.
	State        string `json:"state,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	// Lag is how many entries the member's applied index is behind this
	// node's.
	Lag   uint64 `json:"lag"`
	Error string `json:"error,omitempty"`
}

// Status is the cluster as one node sees it.
type Status struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	Address      string   `json:"address"`
	LeaderID     string   `json:"leader_id"`
	LeaderAddr   string   `json:"leader_address"`
	Term         uint64   `json:"term"`
	LastIndex    uint64   `json:"last_index"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Consistency  string   `json:"default_consistency"`
	Members      []Member `json:"members"`
}

// Status reports this node's view, asking each member for its progress
// (unanswered members are shown unreachable).
func (e *Engine) Status(ctx context.Context) (Status, error) {
	if err := e.checkOpen(); err != nil {
		return Status{}, err
	}
	self := e.progress()
	leaderAddr, leaderID := e.raft.LeaderWithID()
	st := Status{
		ID: e.cfg.NodeID, State: self.State, Address: e.advAddr,
		LeaderID: string(leaderID), LeaderAddr: string(leaderAddr),
		Term: self.Term, LastIndex: self.LastIndex, CommitIndex: self.CommitIndex, AppliedIndex: self.AppliedIndex,
		Consistency: string(e.cfg.Consistency),
	}
	cf := e.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return Status{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	servers := cf.Configuration().Servers
	st.Members = make([]Member, len(servers))
	done := make(chan struct{}, len(servers))
	for i, s := range servers {
		m := Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter,
			Leader: s.ID == leaderID, Self: string(s.ID) == e.cfg.NodeID}
		st.Members[i] = m
		go func(m *Member) {
			defer func() { done <- struct{}{} }()
			var p nodeProgress
			if m.Self {
				p = self
			} else {
				answer, _, err := e.fwd.call(ctx, m.Address, rpcStatus, nil)
				if err == nil {
					err = json.Unmarshal(answer, &p)
				}
				if err != nil {
					m.Error = err.Error()
					return
				}
			}
			m.Reachable, m.State, m.Term, m.AppliedIndex = true, p.State, p.Term, p.AppliedIndex
			if self.AppliedIndex > p.AppliedIndex {
				m.Lag = self.AppliedIndex - p.AppliedIndex
			}
		}(&st.Members[i])
	}
	for range servers {
		<-done
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].ID < st.Members[j].ID })
	return st, nil
}
