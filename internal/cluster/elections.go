package cluster

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// electionFigures counts what raft does around elections on this node,
// from raft's observations. The filter counts and lets nothing through,
// so raft never waits on an observer channel.
//
// After a leader dies, the time to a new one is: how long a follower waits
// without contact before it stands (the heartbeat timeout, randomised by
// raft between one and two of it), then candidacy rounds, each a pre-vote
// and a vote; a round that fails (the other survivor still follows the
// dead leader and refuses, or both stood at once and split the vote) costs
// an election timeout (again one to two of it). These counters tell the
// two apart.
type electionFigures struct {
	candidacies atomic.Uint64 // times this node became a candidate
	leaderships atomic.Uint64 // times it became leader
	preVotes    atomic.Uint64 // pre-vote requests it received
	votes       atomic.Uint64 // vote requests it received
	candidateAt atomic.Int64  // unix ns of its last candidacy
	// detect is how long it had not heard from a leader when it last stood
	// (ns); won how long from that candidacy to leading, for the last
	// election it won (ns).
	detect atomic.Int64
	won    atomic.Int64
}

// observe is the raft observer's filter.
func (f *electionFigures) observe(o *raft.Observation) bool {
	switch d := o.Data.(type) {
	case raft.RaftState:
		now := time.Now()
		switch d {
		case raft.Candidate:
			f.candidacies.Add(1)
			f.candidateAt.Store(now.UnixNano())
			if o.Raft != nil {
				if lc := o.Raft.LastContact(); !lc.IsZero() {
					f.detect.Store(int64(now.Sub(lc)))
				}
			}
		case raft.Leader:
			f.leaderships.Add(1)
			if at := f.candidateAt.Load(); at != 0 {
				f.won.Store(now.UnixNano() - at)
			}
		}
	case raft.RequestPreVoteRequest:
		f.preVotes.Add(1)
	case raft.RequestVoteRequest:
		f.votes.Add(1)
	}
	return false
}

// register attaches the counters to r.
func (f *electionFigures) register(r *raft.Raft) {
	r.RegisterObserver(raft.NewObserver(nil, false, f.observe))
}
