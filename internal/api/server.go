// Package api is the HTTP/JSON interface of MantisDB over a
// storage.StorageEngine: routes, authentication, limits, errors and
// metrics. docs/api/openapi.yaml describes every route; Routes lists them
// and a test keeps the two equal.
//
// Keys and values are binary safe. A key in a path is one percent-decoded
// segment ("/" travels as %2F). In JSON, a key or value that is not valid
// UTF-8 is sent base64-encoded (standard alphabet, padded) and flagged by a
// sibling field: "key_encoding", "value_encoding" or "next_encoding" set to
// "base64". Clients may use the same fields in requests.
//
// Handlers parse a request, call the protocol-neutral operations of
// internal/kv, and encode the answer; what an operation means lives there.
package api

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/internal/telemetry"
	"github.com/mantisdb/mantisdb/storage"
)

// DefaultMaxBatchOps is the default limit on the operations of one batch
// or transaction.
const DefaultMaxBatchOps = 10000

// Options configure a Server. Zero fields take the defaults named on them.
type Options struct {
	// MaxValueSize is the longest value accepted, in bytes
	// (default storage.DefaultMaxValueSize).
	MaxValueSize int
	// MaxBodySize is the largest request body, in bytes (default
	// MaxValueSize + 1 MiB, room for a raw value and its framing).
	MaxBodySize int64
	// MaxBatchOps is the most operations one batch or transaction may hold
	// (default DefaultMaxBatchOps).
	MaxBatchOps int
	// MinBodyRate, when above 0, is the slowest average rate in bytes a
	// second a request body may arrive at once BodyGrace has passed; a
	// slower body is cut off with 408. 0 leaves bodies to the server's
	// read timeout.
	MinBodyRate int64
	// BodyGrace is how long a body may take before MinBodyRate applies
	// (default DefaultBodyGrace).
	BodyGrace time.Duration
	// BodyTimeout, when above 0, is the longest a request body may keep
	// arriving after its handler starts, whatever its rate. It matters
	// with MinBodyRate only: the rate check moves the connection's read
	// deadline, so it takes over the server's ReadTimeout for bodies.
	BodyTimeout time.Duration
	// AuthToken, when not empty, is the bearer token every route but
	// /health requires.
	AuthToken string
	// Logger receives request failures and, at debug level, one line per
	// request (default: discard).
	Logger *slog.Logger
	// Version is the server version /api/v1/version reports (default "dev").
	Version string
	// Store is the operation layer the handlers call (default: a new one
	// over the engine). A server that also speaks another protocol passes
	// the one Store both use.
	Store *kv.Store
	// Telemetry receives the HTTP operations and connections the dashboard
	// shows, under the protocol "http" (default: a new Recorder). Give the
	// Redis server the same Recorder so both protocols appear together.
	Telemetry *telemetry.Recorder
	// Collectors are further Prometheus collectors /metrics serves, such
	// as the RESP server's command figures.
	Collectors []prometheus.Collector
	// ScratchDir is where POST /api/v1/admin/checkpoint puts a checkpoint
	// while it streams it: best on the data directory's file system, so
	// the checkpoint hard-links segments instead of copying them (default,
	// and fallback: the system's temporary directory).
	ScratchDir string
}

func (o Options) withDefaults() Options {
	if o.MaxValueSize <= 0 {
		o.MaxValueSize = storage.DefaultMaxValueSize
	}
	if o.MaxBodySize <= 0 {
		o.MaxBodySize = int64(o.MaxValueSize) + 1<<20
	}
	if o.MaxBatchOps <= 0 {
		o.MaxBatchOps = DefaultMaxBatchOps
	}
	if o.BodyGrace <= 0 {
		o.BodyGrace = DefaultBodyGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Telemetry == nil {
		o.Telemetry = telemetry.New()
	}
	return o
}

// Server answers the HTTP API over one engine. It is safe for concurrent
// use; the engine must be initialised before requests arrive.
type Server struct {
	engine storage.StorageEngine
	// clusterStatus is nil unless the engine is a cluster member.
	clusterStatus clusterStatusSource
	kv            *kv.Store
	opts          Options
	log           *slog.Logger
	metrics       *metrics
	handler       http.Handler
	// telemetry feeds the dashboard; httpOps is its "http" protocol.
	telemetry *telemetry.Recorder
	httpOps   *telemetry.Protocol
}

// New returns a Server over engine. The engine stays the caller's to close.
func New(engine storage.StorageEngine, opts Options) *Server {
	opts = opts.withDefaults()
	if opts.Store == nil {
		opts.Store = kv.New(engine)
	}
	s := &Server{
		engine:        engine,
		clusterStatus: clusterStatusOf(engine),
		kv:            opts.Store,
		opts:          opts,
		log:           opts.Logger,
		metrics:       newMetrics(engine, opts.Version, opts.Collectors...),

		telemetry: opts.Telemetry,
		httpOps:   opts.Telemetry.Protocol("http"),
	}
	s.handler = s.buildHandler()
	return s
}

// Handler returns the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.handler }

// Route is one method and path pattern the server answers.
type Route struct {
	Method string
	Path   string
}

// route binds a Route to its handler. public routes skip authentication.
type route struct {
	Route
	handler http.HandlerFunc
	public  bool
}

// routes is the single table both the mux and Routes are built from.
func (s *Server) routes() []route {
	return []route{
		{Route: Route{"PUT", "/api/v1/kv/{key}"}, handler: s.handlePut},
		{Route: Route{"POST", "/api/v1/kv/{key}"}, handler: s.handlePut},
		{Route: Route{"GET", "/api/v1/kv/{key}"}, handler: s.handleGet},
		{Route: Route{"DELETE", "/api/v1/kv/{key}"}, handler: s.handleDelete},
		{Route: Route{"POST", "/api/v1/kv/batch"}, handler: s.handleBatch},
		{Route: Route{"GET", "/api/v1/kv"}, handler: s.handleScan},
		{Route: Route{"POST", "/api/v1/txn"}, handler: s.handleTxn},
		{Route: Route{"GET", "/api/v1/stats"}, handler: s.handleStats},
		{Route: Route{"GET", "/api/v1/version"}, handler: s.handleVersion},
		{Route: Route{"GET", "/health"}, handler: s.handleHealth, public: true},
		{Route: Route{"GET", "/metrics"}, handler: s.handleMetrics},
		{Route: Route{"GET", "/api/v1/dashboard"}, handler: s.handleDashboard},
		{Route: Route{"GET", "/ui"}, handler: s.handleUI, public: true},
		{Route: Route{"GET", "/ui/{asset}"}, handler: s.handleUI, public: true},
		{Route: Route{"POST", "/api/v1/admin/checkpoint"}, handler: s.handleCheckpoint},
		{Route: Route{"POST", "/api/v1/admin/compact"}, handler: s.handleCompact},
		{Route: Route{"GET", "/api/v1/cluster"}, handler: s.handleClusterStatus},
		{Route: Route{"POST", "/api/v1/cluster/join"}, handler: s.handleClusterJoin},
		{Route: Route{"POST", "/api/v1/cluster/remove"}, handler: s.handleClusterRemove},
		{Route: Route{"POST", "/api/v1/cluster/transfer"}, handler: s.handleClusterTransfer},
	}
}

// Routes lists every route the server registers, in registration order.
func Routes() []Route {
	var s Server
	var out []Route
	for _, rt := range s.routes() {
		out = append(out, rt.Route)
	}
	return out
}

// PublicRoutes lists the routes that answer without the bearer token: the
// health check, and the dashboard's page and built files, which hold no
// data (every data call the page makes needs the token).
func PublicRoutes() []Route {
	var s Server
	var out []Route
	for _, rt := range s.routes() {
		if rt.public {
			out = append(out, rt.Route)
		}
	}
	return out
}

// buildHandler registers every route with its middleware, and answers
// other methods on a known path (405) and unknown paths (404) in JSON.
func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	allowed := make(map[string][]string) // path -> methods
	public := make(map[string]bool)
	for _, rt := range s.routes() {
		h := s.observeFamily(rt.Route, rt.handler)
		if !rt.public {
			h = s.requireToken(h)
		}
		mux.Handle(rt.Method+" "+muxPath(rt.Path), s.metrics.instrument(rt.Path, recoverPanics(s.log, h)))
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
		public[rt.Path] = public[rt.Path] || rt.public
	}
	for path, methods := range allowed {
		// POST /api/v1/kv/batch is the batch route, but other methods on it
		// reach the key routes (it is also the key "batch"); no 405 there.
		if path == "/api/v1/kv/batch" {
			continue
		}
		h := methodNotAllowed(methods)
		if !public[path] {
			h = s.requireToken(h)
		}
		mux.Handle(muxPath(path), s.metrics.instrument(path, h))
	}
	mux.Handle("/", s.metrics.instrument("unmatched", s.requireToken(http.HandlerFunc(notFound))))
	return guardBodyRate(s.opts.MinBodyRate, s.opts.BodyGrace, s.opts.BodyTimeout,
		limitBody(s.opts.MaxBodySize, logRequests(s.log, withConsistency(s.engine, mux))))
}

// muxPath is the ServeMux pattern of a route path. A final wildcard takes
// the rest of the path: {key} becomes {key...} because the mux treats a
// segment that unescapes to exactly "/" (the key "/") as a trailing slash
// and never matches it to {key}, so pathKey takes the key from the
// escaped path itself; {asset} becomes {asset...} so /ui/ matches too.
func muxPath(path string) string {
	if strings.HasSuffix(path, "}") {
		return path[:len(path)-1] + "...}"
	}
	return path
}

// methodNotAllowed answers 405 with the Allow header of a known path.
func methodNotAllowed(methods []string) http.Handler {
	allow := append([]string(nil), methods...)
	for _, m := range methods {
		if m == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	header := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", header)
		writeError(w, newError(codeMethodNotAllowed, "method %s is not allowed on %s (allowed: %s)",
			r.Method, r.URL.EscapedPath(), header))
	})
}

// notFound answers paths no route matches.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, newError(codeNotFound, "no route for %s %s", r.Method, r.URL.EscapedPath()))
}
