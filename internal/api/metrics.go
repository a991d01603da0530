package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mantisdb/mantisdb/storage"
)

// statsTimeout bounds the engine Stats call of one scrape.
const statsTimeout = 5 * time.Second

// metrics holds the server's Prometheus registry: HTTP request figures per
// route, the engine's counters read at scrape time, Go runtime and process.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	handler  http.Handler
}

func newMetrics(engine storage.StorageEngine, version string, extra ...prometheus.Collector) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mantisdb_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mantisdb_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern, method and status code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mantisdb_http_requests_in_flight",
			Help: "HTTP requests being answered now.",
		}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "mantisdb_build_info",
		Help:        "Always 1; the labels name the server version and engine.",
		ConstLabels: prometheus.Labels{"version": version, "engine": engine.Name()},
	})
	build.Set(1)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.requests, m.duration, m.inFlight, build,
		newEngineCollector(engine),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(extra...)
	if c := newClusterCollector(engine); c != nil {
		reg.MustRegister(c)
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// instrument counts and times next under the route label, with the
// labels and figures promhttp's InstrumentHandlerInFlight, Duration and
// Counter would give (method lowercased, or "unknown"; status code, 200
// when the handler wrote nothing), without their per-request label map,
// label hashing and response-writer delegators: the counter and histogram
// of each method and code are looked up once and kept.
func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	rm := &routeMetrics{
		requests: m.requests.MustCurryWith(prometheus.Labels{"route": route}),
		duration: m.duration.MustCurryWith(prometheus.Labels{"route": route}),
		series:   make(map[seriesKey]*series),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		start := time.Now()
		rec, ok := w.(*statusRecorder)
		if !ok {
			rec = &statusRecorder{ResponseWriter: w}
		}
		next.ServeHTTP(rec, r)
		sr := rm.get(seriesKey{method: metricMethod(r.Method), code: rec.status})
		sr.duration.Observe(time.Since(start).Seconds())
		sr.requests.Inc()
	})
}

// routeMetrics holds one route's request counter and duration histogram
// for each method and status code seen so far.
type routeMetrics struct {
	requests *prometheus.CounterVec
	duration prometheus.ObserverVec
	mu       sync.RWMutex
	series   map[seriesKey]*series
}

// seriesKey is a method label and a status code (0: nothing written).
type seriesKey struct {
	method string
	code   int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (rm *routeMetrics) get(k seriesKey) *series {
	rm.mu.RLock()
	sr := rm.series[k]
	rm.mu.RUnlock()
	if sr != nil {
		return sr
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if sr = rm.series[k]; sr == nil {
		code := metricCode(k.code)
		sr = &series{
			requests: rm.requests.WithLabelValues(k.method, code),
			duration: rm.duration.WithLabelValues(k.method, code),
		}
		rm.series[k] = sr
	}
	return sr
}

// metricMethod is the method label: the common methods in lower case,
// any other "unknown", so a client cannot create series at will.
func metricMethod(m string) string {
	switch m {
	case "GET", "get":
		return "get"
	case "PUT", "put":
		return "put"
	case "HEAD", "head":
		return "head"
	case "POST", "post":
		return "post"
	case "DELETE", "delete":
		return "delete"
	case "CONNECT", "connect":
		return "connect"
	case "OPTIONS", "options":
		return "options"
	case "NOTIFY", "notify":
		return "notify"
	case "TRACE", "trace":
		return "trace"
	case "PATCH", "patch":
		return "patch"
	default:
		return "unknown"
	}
}

// metricCode is the code label: 200 for an answer whose handler wrote
// nothing, "unknown" outside 100-599.
func metricCode(code int) string {
	switch {
	case code == 0:
		return "200"
	case code >= 100 && code <= 599:
		return strconv.Itoa(code)
	default:
		return "unknown"
	}
}

// engineCollector reads the engine's Stats at scrape time, so the figures
// are never staler than the scrape.
type engineCollector struct {
	engine storage.StorageEngine
	up     *prometheus.Desc
	stats  []engineStat
}

// engineStat is one storage.Stats field as a metric.
type engineStat struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(storage.Stats) float64
}

func newEngineCollector(engine storage.StorageEngine) *engineCollector {
	stat := func(name, help string, kind prometheus.ValueType, value func(storage.Stats) float64) engineStat {
		return engineStat{desc: prometheus.NewDesc(name, help, nil, nil), kind: kind, value: value}
	}
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	return &engineCollector{
		engine: engine,
		up:     prometheus.NewDesc("mantisdb_engine_up", "1 when the engine answered Stats at this scrape, else 0.", nil, nil),
		stats: []engineStat{
			stat("mantisdb_keys", "Keys visible now.", g, func(s storage.Stats) float64 { return float64(s.Keys) }),
			stat("mantisdb_engine_reads_total", "Reads served by the engine.", c, func(s storage.Stats) float64 { return float64(s.Reads) }),
			stat("mantisdb_engine_writes_total", "Writes (puts) applied by the engine.", c, func(s storage.Stats) float64 { return float64(s.Writes) }),
			stat("mantisdb_engine_deletes_total", "Deletes applied by the engine.", c, func(s storage.Stats) float64 { return float64(s.Deletes) }),
			stat("mantisdb_storage_live_bytes", "Bytes of live records on disk.", g, func(s storage.Stats) float64 { return float64(s.LiveBytes) }),
			stat("mantisdb_storage_dead_bytes", "Bytes of dead records on disk, reclaimable by compaction.", g, func(s storage.Stats) float64 { return float64(s.DeadBytes) }),
			stat("mantisdb_storage_segments", "Log segment files.", g, func(s storage.Stats) float64 { return float64(s.Segments) }),
			stat("mantisdb_storage_syncs_total", "fdatasync calls on the log.", c, func(s storage.Stats) float64 { return float64(s.Syncs) }),
			stat("mantisdb_storage_avg_group_commit", "Average commits per sync (group commit size).", g, func(s storage.Stats) float64 { return s.AvgGroupCommit }),
			stat("mantisdb_storage_compactions_total", "Segment compactions run.", c, func(s storage.Stats) float64 { return float64(s.Compactions) }),
			stat("mantisdb_cache_hits_total", "Value cache hits.", c, func(s storage.Stats) float64 { return float64(s.CacheHits) }),
			stat("mantisdb_cache_misses_total", "Value cache misses.", c, func(s storage.Stats) float64 { return float64(s.CacheMisses) }),
			stat("mantisdb_cache_evictions_total", "Values evicted from the cache.", c, func(s storage.Stats) float64 { return float64(s.CacheEvictions) }),
			stat("mantisdb_cache_resident_bytes", "Bytes held by the value cache.", g, func(s storage.Stats) float64 { return float64(s.CacheResidentBytes) }),
			stat("mantisdb_cache_capacity_bytes", "Value cache budget in bytes.", g, func(s storage.Stats) float64 { return float64(s.CacheCapacityBytes) }),
			stat("mantisdb_cache_hit_ratio", "Cache hits over lookups since start (0..1).", g, func(s storage.Stats) float64 { return s.CacheHitRate }),
		},
	}
}

// Describe implements prometheus.Collector.
func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	for _, s := range c.stats {
		ch <- s.desc
	}
}

// Collect implements prometheus.Collector. A failing engine reports
// mantisdb_engine_up 0 and nothing else, rather than failing the scrape.
func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := c.engine.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, s := range c.stats {
		ch <- prometheus.MustNewConstMetric(s.desc, s.kind, s.value(st))
	}
}
