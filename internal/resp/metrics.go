package resp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus figures: per command calls, errors
// and latency, and the connected clients.
type metrics struct {
	calls    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	clients  prometheus.GaugeFunc
}

func newMetrics(s *Server) *metrics {
	return &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mantisdb_resp_commands_total",
			Help: "RESP commands run, by command.",
		}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mantisdb_resp_command_errors_total",
			Help: "RESP commands that answered an error, by command.",
		}, []string{"command"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mantisdb_resp_command_duration_seconds",
			Help:    "Time to run RESP commands, by command (a commit's sync included).",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"command"}),
		clients: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mantisdb_resp_connected_clients",
			Help: "Open RESP client connections.",
		}, func() float64 { return float64(s.connected()) }),
	}
}

// observe records one run of c that took d, in INFO commandstats and in
// Prometheus. The Prometheus children are looked up once per command and
// server, not per call.
func (s *Server) observe(c *command, d time.Duration, failed bool) {
	st := &s.cstats[c.idx]
	st.record(d, failed)
	ran := st.ran.Load()
	if ran == nil {
		// Two first calls may both get here: WithLabelValues returns the
		// same children to both.
		ran = &ranSeries{calls: s.metrics.calls.WithLabelValues(c.name), duration: s.metrics.duration.WithLabelValues(c.name)}
		st.ran.Store(ran)
	}
	ran.calls.Inc()
	ran.duration.Observe(d.Seconds())
	if failed {
		e := st.errors.Load()
		if e == nil {
			c := s.metrics.errors.WithLabelValues(c.name)
			e = &c
			st.errors.Store(e)
		}
		(*e).Inc()
	}
}

// statsOf is c's figures on this server.
func (s *Server) statsOf(c *command) *commandStats { return &s.cstats[c.idx] }

// Collectors returns the server's Prometheus collectors, for the registry
// /metrics serves.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.calls, s.metrics.errors, s.metrics.duration, s.metrics.clients}
}
