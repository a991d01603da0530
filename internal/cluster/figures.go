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
	// Resends counts this node's writes sent to the leader again after
	// their answer was lost; Duplicates the entries Apply found applied
	// already under their write session (a resend or an old leader's copy),
	// which changed nothing and answered the recorded answer.
	Resends    uint64
	Duplicates uint64
	// SnapshotSyncs counts engine syncs at snapshots: Apply does not sync
	// the engine, raft's log is the durability point.
	SnapshotSyncs uint64
	// Candidacies counts the times this node stood for election;
	// PreVoteRequests and VoteRequests the requests it received from
	// candidates. LastDetect is how long it had not heard from a leader
	// when it last stood, LastElection how long from that candidacy to
	// leading, for the last election it won.
	Candidacies     uint64
	Leaderships     uint64
	PreVoteRequests uint64
	VoteRequests    uint64
	LastDetect      time.Duration
	LastElection    time.Duration
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
		Resends: e.resends.Load(), Duplicates: e.fsm.duplicates.Load(), SnapshotSyncs: e.fsm.snapshotSyncs.Load(),
		Candidacies: e.elections.candidacies.Load(), Leaderships: e.elections.leaderships.Load(),
		PreVoteRequests: e.elections.preVotes.Load(), VoteRequests: e.elections.votes.Load(),
		LastDetect:   time.Duration(e.elections.detect.Load()),
		LastElection: time.Duration(e.elections.won.Load()),
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

// InfoField is one "name:value" line of INFO replication.
type InfoField struct {
	Name  string
	Value any
}

// InfoFields are the counters of f that INFO replication shows after the
// role, term and indexes: raft log appends, forwarding, write sessions,
// snapshot syncs and elections, named like their /metrics counterparts.
func (f Figures) InfoFields() []InfoField {
	return []InfoField{
		{"mantisdb_cluster_log_appends", f.LogAppends},
		{"mantisdb_cluster_log_append_entries", f.LogAppendEntries},
		{"mantisdb_cluster_log_append_ms", f.LogAppendTime.Milliseconds()},
		{"mantisdb_cluster_forward_batches", f.ForwardBatches},
		{"mantisdb_cluster_forwarded_writes", f.ForwardedWrites},
		{"mantisdb_cluster_write_resends", f.Resends},
		{"mantisdb_cluster_duplicate_entries", f.Duplicates},
		{"mantisdb_cluster_snapshot_engine_syncs", f.SnapshotSyncs},
		{"mantisdb_cluster_candidacies", f.Candidacies},
		{"mantisdb_cluster_leaderships", f.Leaderships},
		{"mantisdb_cluster_last_election_ms", f.LastElection.Milliseconds()},
	}
}
