package cluster

import (
	"testing"
	"time"
)

func TestInfoFieldsNameEachCounter(t *testing.T) {
	f := Figures{
		LogAppends: 1, LogAppendEntries: 2, LogAppendTime: 3 * time.Millisecond,
		ForwardBatches: 4, ForwardedWrites: 5, Resends: 6, Duplicates: 7,
		SnapshotSyncs: 8, Candidacies: 9, Leaderships: 10, LastElection: 11 * time.Millisecond,
	}
	want := map[string]any{
		"mantisdb_cluster_log_appends": uint64(1), "mantisdb_cluster_log_append_entries": uint64(2),
		"mantisdb_cluster_log_append_ms": int64(3), "mantisdb_cluster_forward_batches": uint64(4),
		"mantisdb_cluster_forwarded_writes": uint64(5), "mantisdb_cluster_write_resends": uint64(6),
		"mantisdb_cluster_duplicate_entries": uint64(7), "mantisdb_cluster_snapshot_engine_syncs": uint64(8),
		"mantisdb_cluster_candidacies": uint64(9), "mantisdb_cluster_leaderships": uint64(10),
		"mantisdb_cluster_last_election_ms": int64(11),
	}
	got := f.InfoFields()
	if len(got) != len(want) {
		t.Fatalf("%d fields, want %d", len(got), len(want))
	}
	for _, field := range got {
		if w, ok := want[field.Name]; !ok || w != field.Value {
			t.Errorf("%s = %v (%T), want %v", field.Name, field.Value, field.Value, w)
		}
	}
}

// A leader that won an election reports it; raft's observations reach the
// counters.
func TestElectionFigures(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f, err := leader.e.Figures()
	if err != nil {
		t.Fatal(err)
	}
	if f.Leaderships == 0 || f.Candidacies == 0 {
		t.Fatalf("leader's figures: %d leaderships, %d candidacies", f.Leaderships, f.Candidacies)
	}
	follower := c.follower()
	if err := leader.e.Close(); err != nil {
		t.Fatal(err)
	}
	next := c.waitLeader()
	nf, err := next.e.Figures()
	if err != nil {
		t.Fatal(err)
	}
	if nf.Leaderships == 0 || nf.LastElection <= 0 || nf.LastDetect <= 0 {
		t.Fatalf("new leader's figures: %+v", nf)
	}
	var votes uint64
	for _, n := range c.live() {
		g, _ := n.e.Figures()
		votes += g.VoteRequests
	}
	if votes == 0 {
		t.Fatalf("no vote requests counted on the survivors (%s, %s)", follower.id, next.id)
	}
}
