// Package resp serves MantisDB over the Redis protocol (RESP2 and RESP3)
// on the same keyspace as the HTTP API. Requests are read by this
// package's reader (reader.go: pipelines and inline commands, arguments
// that are views of its buffer) behind a guard that enforces the request
// limits; replies are written by this package's
// own RESP3-aware writer. One command table (table.go) drives dispatch,
// COMMAND, arity errors, EXEC's key locks and WATCH; the handlers, one file
// per command family, call internal/kv and nothing below it.
package resp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/internal/telemetry"
	"github.com/mantisdb/mantisdb/storage"
)

// Config is a Server's configuration. Zero limits take their defaults.
type Config struct {
	// Store is the keyspace, shared with the HTTP API.
	Store *kv.Store
	// AuthToken, when set, is the password AUTH and HELLO AUTH must give.
	AuthToken string
	// Version is the server version INFO reports as mantisdb_version.
	Version string
	// Sync is the engine's --sync policy, for INFO persistence.
	Sync string
	// MaxConnections bounds the open connections (default 10000): one more
	// is answered "ERR max number of clients reached" and closed.
	MaxConnections int
	// IdleTimeout closes a connection that sent nothing for this long;
	// zero never does (Redis's timeout 0).
	IdleTimeout time.Duration
	// MaxBulk is the longest bulk string (key or value) a request may carry
	// (default storage.DefaultMaxValueSize); longer is "invalid bulk length".
	MaxBulk int64
	// MaxArgs is the most arguments of one command (default DefaultMaxArgs).
	MaxArgs int64
	// MaxQueryBuffer is the largest single request in bytes (default
	// DefaultMaxQueryBuffer).
	MaxQueryBuffer int64
	// ConcurrentPipeline runs the commands of one pipelined read batch on
	// different keys concurrently, so their commits share the engine's
	// group commit instead of paying one sync each. Worth it only when
	// every commit waits for a sync (--sync always on a durable engine).
	ConcurrentPipeline bool
	// Transport is how connections are served: TransportEventLoop,
	// TransportGoroutines, or empty for the event loop where no write
	// waits for a sync or a replica and goroutines where writes wait.
	Transport string
	// Loops is the number of event loops (default GOMAXPROCS).
	Loops int
	// Logger receives connection-level problems; nil discards them.
	Logger *slog.Logger
	// Telemetry, when set, receives the commands and connections the
	// dashboard shows, under the protocol "redis". Give it the HTTP
	// server's Recorder so both protocols appear together.
	Telemetry *telemetry.Recorder
}

// defaultMaxConnections is Redis's maxclients default.
const defaultMaxConnections = 10000

// The goroutines running pipelined commands concurrently, server-wide:
// waveSlotsPerCPU per CPU, at least minWaveSlots. A command that finds no
// free slot runs on its connection's goroutine.
const (
	waveSlotsPerCPU = 8
	minWaveSlots    = 16
)

// writeTimeout bounds one flush of replies to a client that stopped reading.
const writeTimeout = 60 * time.Second

// Server is a RESP server. Start it with Serve or Start; Close stops it.
type Server struct {
	cfg     Config
	store   *kv.Store
	log     *slog.Logger
	started time.Time
	metrics *metrics
	// cstats are each command's figures, indexed by command.idx.
	cstats []commandStats
	// waveSlots bounds the goroutines that run the commands of pipelined
	// waves concurrently (ConcurrentPipeline), server-wide: each may block
	// an OS thread in the engine until its commit is durable.
	waveSlots chan struct{}
	// ops is the dashboard's record of this protocol (nil: none).
	ops *telemetry.Protocol
	// loops are the event loops (none: a goroutine per connection);
	// loopRuns is what they may run themselves (loopPolicy); loopsStop
	// lets them end once their connections are closed.
	loops     []*netLoop
	loopRuns  int
	loopsStop atomic.Bool
	startOnce sync.Once

	ln       net.Listener
	closing  atomic.Bool
	nextID   atomic.Int64
	mu       sync.Mutex
	sessions map[int64]*session
	wg       sync.WaitGroup

	// Totals for INFO stats.
	totalConns    atomic.Int64
	totalCommands atomic.Int64
	rejectedConns atomic.Int64
}

// New returns a Server over cfg.Store.
func New(cfg Config) *Server {
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = defaultMaxConnections
	}
	if cfg.MaxBulk <= 0 {
		cfg.MaxBulk = storage.DefaultMaxValueSize
	}
	if cfg.MaxArgs <= 0 {
		cfg.MaxArgs = DefaultMaxArgs
	}
	if cfg.MaxQueryBuffer <= 0 {
		cfg.MaxQueryBuffer = DefaultMaxQueryBuffer
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: log, started: time.Now(), sessions: make(map[int64]*session)}
	s.metrics = newMetrics(s)
	if cfg.Telemetry != nil {
		s.ops = cfg.Telemetry.Protocol("redis")
	}
	s.cstats = make([]commandStats, numCommands)
	s.waveSlots = make(chan struct{}, max(minWaveSlots, waveSlotsPerCPU*runtime.GOMAXPROCS(0)))
	s.loopRuns = loopPolicy(cfg)
	return s
}

// Start serves ln in the background and returns the server; for tests and
// embedding. Its address is Addr; Close stops it.
func Start(ln net.Listener, cfg Config) *Server {
	s := New(cfg)
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.serve(ln)
	}()
	return s
}

// Addr is the address the server listens on (nil before Serve).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return s.serve(ln)
}

func (s *Server) serve(ln net.Listener) error {
	s.startOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.closing.Load() {
			s.startLoops()
		}
	})
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("resp: accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.accept(nc)
	}
}

// accept registers a connection and serves it, or refuses it when the
// server is full or closing.
func (s *Server) accept(nc net.Conn) {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if len(s.sessions) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		s.rejectedConns.Add(1)
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
		_ = nc.Close()
		return
	}
	sess := newSession(s, nc, s.nextID.Add(1))
	s.sessions[sess.id] = sess
	s.wg.Add(1)
	onLoop := s.adopt(sess, nc)
	s.mu.Unlock()
	s.totalConns.Add(1)
	if s.ops != nil {
		s.ops.ConnOpened()
	}
	if onLoop {
		return
	}
	go func() {
		defer s.wg.Done()
		sess.serve()
		s.mu.Lock()
		delete(s.sessions, sess.id)
		s.mu.Unlock()
		if s.ops != nil {
			s.ops.ConnClosed()
		}
	}()
}

// Close stops accepting, lets every connection finish the batch of
// commands it is running (their replies are sent), closes the connections
// and waits for them. ctx bounds the wait; past it Close returns ctx's
// error with connections still finishing.
func (s *Server) Close(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	ln := s.ln
	for _, sess := range s.sessions {
		sess.shutdown()
	}
	s.stopLoops()
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clients returns the open sessions in id order.
func (s *Server) clients() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	sortSessions(out)
	return out
}

// connected is the number of open connections.
func (s *Server) connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
