package api

import (
	"context"
	"net/http"

	"github.com/mantisdb/mantisdb/internal/cluster"
	"github.com/mantisdb/mantisdb/internal/telemetry"
	"github.com/mantisdb/mantisdb/storage"
)

// dashboardAnswer is the answer of GET /api/v1/dashboard: the counters and
// gauges the dashboard charts, read at one moment. Counters run from the
// server's start; the page turns them into rates from successive answers.
type dashboardAnswer struct {
	TimeMs        int64             `json:"time_ms"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Version       string            `json:"version"`
	Engine        string            `json:"engine"`
	Stats         *storage.Stats    `json:"stats,omitempty"`
	StatsError    string            `json:"stats_error,omitempty"`
	Protocols     []protocolFigures `json:"protocols"`
	// Cluster is GET /api/v1/cluster's answer, present only on a cluster
	// member; ClusterError says why it is missing when the node could not
	// report it.
	Cluster      *cluster.Status `json:"cluster,omitempty"`
	ClusterError string          `json:"cluster_error,omitempty"`
}

// protocolFigures is one protocol's part of the dashboard answer.
type protocolFigures struct {
	Name             string                   `json:"name"`
	Connections      int64                    `json:"connections"`
	ConnectionsTotal uint64                   `json:"connections_total"`
	Families         map[string]familyFigures `json:"families"`
}

// familyFigures is one command family's part: a counter, and the latency
// percentiles of the operations of the last whole second.
type familyFigures struct {
	Ops       uint64 `json:"ops"`
	WindowOps uint64 `json:"window_ops"`
	P50Micros int64  `json:"p50_us"`
	P99Micros int64  `json:"p99_us"`
}

// handleDashboard answers the figures the dashboard at /ui polls every
// second. An engine that fails Stats still gets an answer, with the error
// in stats_error, so the page can say what is wrong.
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	snap := s.telemetry.Snapshot()
	ans := dashboardAnswer{
		TimeMs:        snap.Time.UnixMilli(),
		UptimeSeconds: snap.Uptime.Seconds(),
		Version:       s.opts.Version,
		Engine:        s.engine.Name(),
		Protocols:     make([]protocolFigures, 0, len(snap.Protocols)),
	}
	ctx, cancel := context.WithTimeout(r.Context(), statsTimeout)
	defer cancel()
	if st, err := s.engine.Stats(ctx); err != nil {
		ans.StatsError = err.Error()
	} else {
		ans.Stats = &st
	}
	if s.clusterStatus != nil {
		if cs, err := s.clusterStatus.Status(ctx); err != nil {
			ans.ClusterError = err.Error()
		} else {
			ans.Cluster = &cs
		}
	}
	for _, p := range snap.Protocols {
		pf := protocolFigures{
			Name:             p.Name,
			Connections:      p.Connections,
			ConnectionsTotal: p.ConnectionsTotal,
			Families:         make(map[string]familyFigures, telemetry.NumFamilies),
		}
		for f, fs := range p.Families {
			pf.Families[telemetry.Family(f).String()] = familyFigures{
				Ops:       fs.Ops,
				WindowOps: fs.WindowOps,
				P50Micros: fs.P50.Microseconds(),
				P99Micros: fs.P99.Microseconds(),
			}
		}
		ans.Protocols = append(ans.Protocols, pf)
	}
	writeJSON(w, http.StatusOK, ans)
}
