package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/storage"
)

// The cluster routes answer on a server whose engine is a cluster node
// (internal/cluster); on a single node they answer 404 saying so.

// clusterStatusSource is what reports a cluster node's status: the
// *cluster.Engine of a cluster member. GET /api/v1/cluster and the
// dashboard both read it, so they show the same thing.
type clusterStatusSource interface {
	Status(ctx context.Context) (cluster.Status, error)
}

// clusterStatusOf returns engine's status source, nil on a single node.
func clusterStatusOf(engine storage.StorageEngine) clusterStatusSource {
	if c, ok := engine.(*cluster.Engine); ok {
		return c
	}
	return nil
}

// clusterNode returns the engine as a cluster node, or an error answer.
func (s *Server) clusterNode() (*cluster.Engine, error) {
	if c, ok := s.engine.(*cluster.Engine); ok {
		return c, nil
	}
	return nil, newError(codeNotFound, "this server is a single node, not a cluster member (start it with --node-id and --bootstrap or --join)")
}

// handleClusterStatus answers cluster.Status: this node, the leader, terms,
// commit and applied indexes, and every member with its lag.
func (s *Server) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	_, err := s.clusterNode()
	if err == nil {
		_, err = parseQuery(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.clusterStatus.Status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// memberRequest is the body of the join, remove and transfer routes.
type memberRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// clusterOK is the answer of a membership change that succeeded.
type clusterOK struct {
	OK bool `json:"ok"`
}

// memberChange decodes a membership request and runs change on the node.
func (s *Server) memberChange(w http.ResponseWriter, r *http.Request, change func(context.Context, *cluster.Engine, memberRequest) error) {
	c, err := s.clusterNode()
	if err == nil {
		_, err = parseQuery(r)
	}
	var req memberRequest
	if err == nil {
		err = decodeJSON(r.Body, &req)
	}
	if err == nil {
		err = change(r.Context(), c, req)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, clusterOK{OK: true})
}

// handleClusterJoin adds a voter: {"id": ..., "address": raft host:port}.
func (s *Server) handleClusterJoin(w http.ResponseWriter, r *http.Request) {
	s.memberChange(w, r, func(ctx context.Context, c *cluster.Engine, req memberRequest) error {
		return c.Join(ctx, req.ID, req.Address)
	})
}

// handleClusterRemove removes a member for good: {"id": ...}.
func (s *Server) handleClusterRemove(w http.ResponseWriter, r *http.Request) {
	s.memberChange(w, r, func(ctx context.Context, c *cluster.Engine, req memberRequest) error {
		if req.Address != "" {
			return invalidf("remove takes an id only")
		}
		return c.Remove(ctx, req.ID)
	})
}

// handleClusterTransfer moves leadership: {"id": ...}, or {} for any voter.
func (s *Server) handleClusterTransfer(w http.ResponseWriter, r *http.Request) {
	s.memberChange(w, r, func(ctx context.Context, c *cluster.Engine, req memberRequest) error {
		if req.Address != "" {
			return invalidf("transfer takes an id only")
		}
		return c.TransferLeadership(ctx, req.ID)
	})
}

// withConsistency reads the consistency query parameter of a request to a
// cluster node into the request's context, and takes it out of the query
// so each route's own parameter check does not see it.
func withConsistency(engine storage.StorageEngine, next http.Handler) http.Handler {
	if _, ok := engine.(*cluster.Engine); !ok {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil || !q.Has("consistency") {
			next.ServeHTTP(w, r)
			return
		}
		if len(q["consistency"]) > 1 {
			writeError(w, invalidf("query parameter \"consistency\" is given %d times", len(q["consistency"])))
			return
		}
		level, err := cluster.ParseConsistency(q.Get("consistency"))
		if err != nil {
			writeError(w, invalidf("%v", err))
			return
		}
		q.Del("consistency")
		r2 := r.WithContext(cluster.WithConsistency(r.Context(), level))
		u := *r.URL
		u.RawQuery = q.Encode()
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// clusterError maps the cluster's errors, or returns nil.
func clusterError(err error) *apiError {
	switch {
	case errors.Is(err, cluster.ErrNoLeader):
		return newError(codeUnavailable, "%v; retry shortly", err)
	case errors.Is(err, cluster.ErrUnknownOutcome):
		return newError(codeUnavailable, "%v", err)
	case errors.Is(err, cluster.ErrStopped):
		return newError(codeUnavailable, "%v", err)
	case errors.Is(err, cluster.ErrNotVoter):
		return newError(codeNotFound, "%v", err)
	}
	return nil
}

// clusterCollector exposes a cluster node's replication figures.
type clusterCollector struct {
	node  *cluster.Engine
	descs map[string]*prometheus.Desc
}

var clusterMetrics = []struct{ name, help string }{
	{"mantisdb_cluster_leader", "1 when this node leads the cluster, else 0."},
	{"mantisdb_cluster_term", "Current raft term."},
	{"mantisdb_cluster_last_index", "Index of the last entry in this node's raft log."},
	{"mantisdb_cluster_commit_index", "Highest raft index this node knows committed."},
	{"mantisdb_cluster_applied_index", "Highest raft index applied to this node's engine."},
	{"mantisdb_cluster_members", "Members in the cluster's configuration."},
	{"mantisdb_cluster_leader_contact_seconds", "Seconds since a follower last heard from the leader (0 on the leader)."},
	{"mantisdb_cluster_apply_batches_total", "Raft batches applied, each as one engine commit."},
	{"mantisdb_cluster_apply_entries_total", "Raft entries applied."},
	{"mantisdb_cluster_conflicts_total", "Transactions refused in Apply because a key changed after it was read."},
	{"mantisdb_cluster_snapshot_installs_total", "Snapshots installed into this node's engine."},
	{"mantisdb_cluster_snapshot_engine_syncs_total", "Engine syncs at snapshots (Apply leaves the engine unsynced; the raft log is synced)."},
	{"mantisdb_cluster_log_appends_total", "Appends to this node's raft log, each one raft-boltdb transaction with its fsyncs."},
	{"mantisdb_cluster_log_append_entries_total", "Entries written by those raft log appends."},
	{"mantisdb_cluster_log_append_seconds_total", "Time spent in raft log appends."},
	{"mantisdb_cluster_forward_batches_total", "Batch RPCs that carried this node's writes to the leader."},
	{"mantisdb_cluster_forwarded_writes_total", "Writes carried to the leader by those batch RPCs."},
	{"mantisdb_cluster_write_resends_total", "Writes this node sent again, under the same session, after their answer was lost."},
	{"mantisdb_cluster_duplicate_entries_total", "Entries Apply found applied already under their write session; they changed nothing."},
	{"mantisdb_cluster_candidacies_total", "Times this node stood for election."},
	{"mantisdb_cluster_leaderships_total", "Times this node became leader."},
	{"mantisdb_cluster_prevote_requests_total", "Pre-vote requests this node received from candidates."},
	{"mantisdb_cluster_vote_requests_total", "Vote requests this node received from candidates."},
	{"mantisdb_cluster_last_election_detect_seconds", "Seconds without a leader's contact when this node last stood for election."},
	{"mantisdb_cluster_last_election_seconds", "Seconds from this node's candidacy to leading, for the last election it won."},
}

// newClusterCollector returns nil for an engine that is not a cluster node.
func newClusterCollector(engine storage.StorageEngine) prometheus.Collector {
	node, ok := engine.(*cluster.Engine)
	if !ok {
		return nil
	}
	c := &clusterCollector{node: node, descs: make(map[string]*prometheus.Desc)}
	for _, m := range clusterMetrics {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, nil, prometheus.Labels{"node_id": node.NodeID()})
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector; a closed node reports nothing.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	f, err := c.node.Figures()
	if err != nil {
		return
	}
	leader := 0.0
	if f.Leader {
		leader = 1
	}
	g, k := prometheus.GaugeValue, prometheus.CounterValue
	for name, v := range map[string]struct {
		kind  prometheus.ValueType
		value float64
	}{
		"mantisdb_cluster_leader":                       {g, leader},
		"mantisdb_cluster_term":                         {g, float64(f.Term)},
		"mantisdb_cluster_last_index":                   {g, float64(f.LastIndex)},
		"mantisdb_cluster_commit_index":                 {g, float64(f.CommitIndex)},
		"mantisdb_cluster_applied_index":                {g, float64(f.AppliedIndex)},
		"mantisdb_cluster_members":                      {g, float64(f.Members)},
		"mantisdb_cluster_leader_contact_seconds":       {g, f.SinceContact.Seconds()},
		"mantisdb_cluster_apply_batches_total":          {k, float64(f.Batches)},
		"mantisdb_cluster_apply_entries_total":          {k, float64(f.Entries)},
		"mantisdb_cluster_conflicts_total":              {k, float64(f.Conflicts)},
		"mantisdb_cluster_snapshot_installs_total":      {k, float64(f.SnapshotsUsed)},
		"mantisdb_cluster_snapshot_engine_syncs_total":  {k, float64(f.SnapshotSyncs)},
		"mantisdb_cluster_log_appends_total":            {k, float64(f.LogAppends)},
		"mantisdb_cluster_log_append_entries_total":     {k, float64(f.LogAppendEntries)},
		"mantisdb_cluster_log_append_seconds_total":     {k, f.LogAppendTime.Seconds()},
		"mantisdb_cluster_forward_batches_total":        {k, float64(f.ForwardBatches)},
		"mantisdb_cluster_forwarded_writes_total":       {k, float64(f.ForwardedWrites)},
		"mantisdb_cluster_write_resends_total":          {k, float64(f.Resends)},
		"mantisdb_cluster_duplicate_entries_total":      {k, float64(f.Duplicates)},
		"mantisdb_cluster_candidacies_total":            {k, float64(f.Candidacies)},
		"mantisdb_cluster_leaderships_total":            {k, float64(f.Leaderships)},
		"mantisdb_cluster_prevote_requests_total":       {k, float64(f.PreVoteRequests)},
		"mantisdb_cluster_vote_requests_total":          {k, float64(f.VoteRequests)},
		"mantisdb_cluster_last_election_detect_seconds": {g, f.LastDetect.Seconds()},
		"mantisdb_cluster_last_election_seconds":        {g, f.LastElection.Seconds()},
	} {
		ch <- prometheus.MustNewConstMetric(c.descs[name], v.kind, v.value)
	}
}
