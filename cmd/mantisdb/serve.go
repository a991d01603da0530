package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/internal/resp"
	"github.com/mantisdb/mantisdb/internal/telemetry"
	"github.com/mantisdb/mantisdb/storage"
)

// HTTP server limits. Reads and writes get a minute so a value at the
// default 64 MiB limit still passes at about 1 MB/s. Headers must arrive
// within readHeaderTimeout, and a body must average --min-body-rate once
// its first api.DefaultBodyGrace has passed, so a client trickling bytes
// (slowloris) holds a connection for seconds, not the whole minute; and
// at most --max-connections are open, so such clients cannot take every
// file descriptor the engine needs for its own files.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	// maxHeaderBytes counts the request line too: a 65,535-byte key
	// percent-encoded takes up to three times that.
	maxHeaderBytes = 1 << 20
	// defaultMaxConnections and defaultMinBodyRate are the defaults of
	// --max-connections and --min-body-rate. 16 KiB/s is a slow mobile
	// uplink; a client slower than that for a whole body is holding the
	// connection rather than using it.
	defaultMaxConnections = 1024
	defaultMinBodyRate    = 16 << 10
	// fdReserve is how many file descriptors beyond --max-connections the
	// process wants for the engine's segments, hint files and the listener.
	fdReserve = 256
)

// serve opens the engine, answers HTTP until ctx is cancelled (a signal),
// then shuts down: no new connections, requests in flight finish within
// --shutdown-timeout, and the engine is synced and closed. stopSignals
// restores default signal handling once shutdown begins, so a second
// Ctrl-C kills the process at once.
func serve(ctx context.Context, stopSignals func(), cfg config, log *slog.Logger) error {
	engine, err := openEngine(cfg, log)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(cfg.bind, strconv.Itoa(cfg.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(fmt.Errorf("listening on %s: %w", addr, err), closeEngine(engine))
	}
	ln = netutil.LimitListener(ln, cfg.maxConnections)
	// One operation layer for both protocols (WATCH sees HTTP writes), and
	// one telemetry Recorder, so the dashboard shows them side by side.
	store := kv.New(engine)
	figures := telemetry.New()
	respSrv, respLn, err := listenRESP(cfg, store, figures, log)
	if err != nil {
		_ = ln.Close()
		return errors.Join(err, closeEngine(engine))
	}
	var collectors []prometheus.Collector
	if respSrv != nil {
		collectors = respSrv.Collectors()
	}
	handler := api.New(engine, api.Options{
		Store:        store,
		MaxValueSize: int(cfg.maxValueSize),
		MaxBodySize:  cfg.maxBodySize,
		MaxBatchOps:  cfg.maxBatchOps,
		MinBodyRate:  cfg.minBodyRate,
		BodyGrace:    api.DefaultBodyGrace,
		BodyTimeout:  readTimeout,
		AuthToken:    cfg.authToken,
		Logger:       log,
		Version:      version,
		Telemetry:    figures,
		Collectors:   collectors,
		ScratchDir:   scratchDir(cfg.dataDir),
	})
	srv := &http.Server{
		Handler:           handler.Handler(),
		ConnState:         handler.ConnState,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.tlsCertificate != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cfg.tlsCertificate}, MinVersion: tls.VersionTLS12}
	}
	if respSrv != nil {
		// Logged before the "mantisdb listening" line, which tools wait
		// for: by then both addresses are known.
		log.Info("mantisdb serving the Redis protocol", "addr", respLn.Addr().String(), "auth", cfg.authToken != "")
	}
	logStart(log, cfg, engine.Name(), ln.Addr().String())
	warnLimits(log, cfg)

	served := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	respServed := make(chan error, 1)
	if respSrv != nil {
		go func() { respServed <- respSrv.Serve(respLn) }()
	}
	stopped, stopErr := nodeStopped(engine)
	select {
	case err := <-served:
		return errors.Join(fmt.Errorf("serving HTTP: %w", err), closeRESP(respSrv), closeEngine(engine))
	case err := <-respServed:
		_ = srv.Close()
		return errors.Join(fmt.Errorf("serving the Redis protocol: %w", err), closeEngine(engine))
	case <-stopped:
		// A cluster member whose engine failed in Apply exits, to be restarted.
		_ = srv.Close()
		<-served
		return errors.Join(stopErr(), closeRESP(respSrv), closeEngine(engine))
	case <-ctx.Done():
	}
	stopSignals()
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.shutdownTimeout)
	var errs []error
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("requests still running after --shutdown-timeout %v were cut off: %w", cfg.shutdownTimeout, err))
		_ = srv.Close()
	}
	<-served // http.ErrServerClosed once Shutdown or Close has begun
	if respSrv != nil {
		if err := respSrv.Close(sctx); err != nil {
			errs = append(errs, fmt.Errorf("Redis-protocol commands still running after --shutdown-timeout %v: %w", cfg.shutdownTimeout, err))
		}
	}
	errs = append(errs, closeEngine(engine))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log.Info("mantisdb stopped")
	return nil
}

// listenRESP opens the Redis-protocol listener on --bind:--resp-port over
// the same engine; nil, nil when --resp-port is -1.
func listenRESP(cfg config, store *kv.Store, figures *telemetry.Recorder, log *slog.Logger) (*resp.Server, net.Listener, error) {
	if cfg.respPort < 0 {
		return nil, nil, nil
	}
	addr := net.JoinHostPort(cfg.bind, strconv.Itoa(cfg.respPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s for the Redis protocol (--resp-port; -1 turns it off): %w", addr, err)
	}
	srv := resp.New(resp.Config{
		Store:          store,
		Telemetry:      figures,
		AuthToken:      cfg.authToken,
		Version:        version,
		Sync:           cfg.sync,
		MaxConnections: cfg.maxConnections,
		IdleTimeout:    cfg.respIdle,
		Transport:      cfg.respTransport,
		Loops:          cfg.respLoops,
		MaxBulk:        cfg.maxValueSize,
		// Pipelined writes share group commits only where each commit
		// waits for its sync.
		ConcurrentPipeline: cfg.sync == string(storage.SyncAlways) && store.Engine().Name() != "memory",
		Logger:             log,
	})
	return srv, ln, nil
}

// closeRESP stops a Redis-protocol server at once (the HTTP side failed).
func closeRESP(srv *resp.Server) error {
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Close(ctx)
}

// openEngine creates the data directory (0700: the data is the users') and
// opens the configured engine in it.
func openEngine(cfg config, log *slog.Logger) (storage.StorageEngine, error) {
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	scfg := storage.DefaultConfig()
	scfg.DataDir = cfg.dataDir
	scfg.Sync = storage.SyncPolicy(cfg.sync)
	scfg.SyncInterval = cfg.syncInterval
	scfg.CacheSize = cfg.cacheSize
	scfg.SegmentSize = cfg.segmentSize
	scfg.NoMapReads = !cfg.mapReads
	scfg.MaxValueSize = int(cfg.maxValueSize)
	if cfg.cluster.nodeID != "" {
		return openCluster(cfg, scfg, log)
	}
	engine, err := storage.NewStorageEngine(cfg.engine, scfg)
	if err != nil {
		return nil, err
	}
	if err := engine.Init(cfg.dataDir); err != nil {
		return nil, fmt.Errorf("opening the %s engine in %s: %w", cfg.engine, cfg.dataDir, err)
	}
	return engine, nil
}

// scratchDir is the directory beside the data directory, where a
// checkpoint can hard-link the engine's segments.
func scratchDir(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return ""
	}
	return filepath.Dir(abs)
}

// closeEngine syncs then closes: Close syncs too, but a separate Sync
// reports a failed flush on its own.
func closeEngine(engine storage.StorageEngine) error {
	var errs []error
	if err := engine.Sync(context.Background()); err != nil {
		errs = append(errs, fmt.Errorf("syncing the engine: %w", err))
	}
	if err := engine.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the engine: %w", err))
	}
	return errors.Join(errs...)
}

// logStart writes the one start-up line. The auth token is never logged;
// only whether auth is on.
func logStart(log *slog.Logger, cfg config, engine, addr string) {
	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		dataDir = cfg.dataDir
	}
	attrs := []any{
		"version", version, "engine", engine, "data_dir", dataDir, "sync", cfg.sync,
	}
	if cfg.sync == string(storage.SyncInterval) {
		attrs = append(attrs, "sync_interval", cfg.syncInterval)
	}
	attrs = append(attrs, "addr", addr, "tls", cfg.tlsCertificate != nil, "auth", cfg.authToken != "")
	log.Info("mantisdb listening", attrs...)
	if cfg.authToken == "" && !isLoopback(cfg.bind) {
		log.Warn("listening beyond loopback without --auth-token: anyone who reaches the port can read and write", "bind", cfg.bind)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warnLimits logs settings that leave the server open to exhaustion or its
// data open to other users: an open-file limit too low for
// --max-connections, and a data directory others can enter (one that
// existed before, since a new one is created 0700).
func warnLimits(log *slog.Logger, cfg config) {
	if limit, ok := openFileLimit(); ok && limit < uint64(cfg.maxConnections)+fdReserve {
		log.Warn("the open-file limit leaves too few descriptors for --max-connections and the engine's files: "+
			"raise ulimit -n or lower --max-connections",
			"open_file_limit", limit, "max_connections", cfg.maxConnections, "reserve", fdReserve)
	}
	if fi, err := os.Stat(cfg.dataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory is open to other users; chmod 700 it", "data_dir", cfg.dataDir, "mode", fi.Mode().Perm().String())
	}
}

// openFileLimit is the soft RLIMIT_NOFILE, which the Go runtime raises to
// the hard limit at start-up.
func openFileLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return rl.Cur, true
}
