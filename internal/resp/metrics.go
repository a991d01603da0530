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

func (m *metrics) observe(c *command, d time.Duration, failed bool) {
	m.calls.WithLabelValues(c.name).Inc()
	m.duration.WithLabelValues(c.name).Observe(d.Seconds())
	if failed {
		m.errors.WithLabelValues(c.name).Inc()
	}
}

// Collectors returns the server's Prometheus collectors, for the registry
// /metrics serves.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.calls, s.metrics.errors, s.metrics.duration, s.metrics.clients}
}
