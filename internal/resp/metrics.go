package resp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus figures: per command calls, errors
// and latency, and the connected clients.
type metrics struct {
	counts   *commandCounters
	duration *prometheus.HistogramVec
	clients  prometheus.GaugeFunc
}

func newMetrics(s *Server) *metrics {
	return &metrics{
		counts: &commandCounters{
			srv: s,
			calls: prometheus.NewDesc("mantisdb_resp_commands_total",
				"RESP commands run, by command.", []string{"command"}, nil),
			errors: prometheus.NewDesc("mantisdb_resp_command_errors_total",
				"RESP commands that answered an error, by command.", []string{"command"}, nil),
		},
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

// commandCounters exports the calls and errors of INFO commandstats
// (commandStats.calls and .failed) as Prometheus counters when scraped,
// so that a command counts itself once, not once per place that shows it.
// A command appears once it has run (its errors once one failed), as a
// labelled counter created on first use would.
type commandCounters struct {
	srv           *Server
	calls, errors *prometheus.Desc
}

func (cc *commandCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.calls
	ch <- cc.errors
}

func (cc *commandCounters) Collect(ch chan<- prometheus.Metric) {
	each := func(c *command) {
		st := cc.srv.statsOf(c)
		if n := st.calls.Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(cc.calls, prometheus.CounterValue, float64(n), c.name)
		}
		if n := st.failed.Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(cc.errors, prometheus.CounterValue, float64(n), c.name)
		}
	}
	for _, c := range commandList {
		each(c)
		for _, s := range c.subcommands {
			each(s)
		}
	}
}

// observe records one run of c that took d, in INFO commandstats (whose
// calls and errors /metrics shows too) and in the latency histogram. The
// histogram's child is looked up once per command and server, not per
// call.
func (s *Server) observe(c *command, d time.Duration, failed bool) {
	st := &s.cstats[c.idx]
	st.record(d, failed)
	h := st.duration.Load()
	if h == nil {
		// Two first calls may both get here: WithLabelValues returns the
		// same child to both.
		o := s.metrics.duration.WithLabelValues(c.name)
		h = &o
		st.duration.Store(h)
	}
	(*h).Observe(d.Seconds())
}

// statsOf is c's figures on this server.
func (s *Server) statsOf(c *command) *commandStats { return &s.cstats[c.idx] }

// Collectors returns the server's Prometheus collectors, for the registry
// /metrics serves.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.counts, s.metrics.duration, s.metrics.clients}
}
