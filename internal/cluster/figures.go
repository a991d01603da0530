package cluster

import "time"

// Figures are this node's replication counters, read without asking other
// nodes: for /metrics and INFO replication.
type Figures struct {
	Leader        bool
	State         string
	Term          uint64
	LastIndex     uint64
	CommitIndex   uint64
	AppliedIndex  uint64
	Members       int
	SinceContact  time.Duration // since the leader was last heard from (followers)
	Batches       uint64        // raft batches applied as one engine commit
	Entries       uint64        // entries in those batches
	Conflicts     uint64        // conditional entries refused in Apply
	SnapshotsUsed uint64        // snapshots installed into the local engine
	// LogAppends counts raft log appends (one transaction and its fsyncs
	// each), LogAppendEntries the entries they held and LogAppendTime
	// their total duration.
	LogAppends       uint64
	LogAppendEntries uint64
	LogAppendTime    time.Duration
	// ForwardBatches counts the batch RPCs that carried this node's
	// writes to the leader, ForwardedWrites the writes they carried.
	ForwardBatches  uint64
	ForwardedWrites uint64
}

// Figures returns this node's counters.
func (e *Engine) Figures() (Figures, error) {
	if err := e.checkOpen(); err != nil {
		return Figures{}, err
	}
	// The leader flag and the term must belong together: a node that
	// stepped down into a newer term is not that term's leader.
	var p nodeProgress
	var leader bool
	for {
		p = e.progress()
		leader = e.isLeader()
		if e.raft.CurrentTerm() == p.Term {
			break
		}
	}
	f := Figures{
		Leader: leader, State: p.State, Term: p.Term, LastIndex: p.LastIndex,
		CommitIndex: p.CommitIndex, AppliedIndex: p.AppliedIndex,
		Batches: e.fsm.batches.Load(), Entries: e.fsm.entries.Load(),
		Conflicts: e.fsm.conflicts.Load(), SnapshotsUsed: e.fsm.restores.Load(),
		LogAppends: e.logStore.appends.Load(), LogAppendEntries: e.logStore.entries.Load(),
		LogAppendTime:  time.Duration(e.logStore.nanos.Load()),
		ForwardBatches: e.batcher.batches.Load(), ForwardedWrites: e.batcher.proposals.Load(),
	}
	if !f.Leader {
		if t := e.raft.LastContact(); !t.IsZero() {
			f.SinceContact = time.Since(t)
		}
	}
	if cf := e.raft.GetConfiguration(); cf.Error() == nil {
		f.Members = len(cf.Configuration().Servers)
	}
	return f, nil
}
