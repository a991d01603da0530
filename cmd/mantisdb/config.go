package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/internal/resp"
	"github.com/mantisdb/mantisdb/storage"
)

// envPrefix starts the environment variable of every flag: --data-dir is
// also MANTISDB_DATA_DIR.
const envPrefix = "MANTISDB_"

// noEnv lists the flags that only make sense on the command line.
var noEnv = map[string]bool{"version": true, "benchmark-only": true, "benchmark-allow-remote": true}

// config is the server's configuration after flags, environment and
// defaults are merged and checked.
type config struct {
	port            int
	respPort        int
	respIdle        time.Duration
	respTransport   string
	respLoops       int
	bind            string
	dataDir         string
	cacheSize       int64
	segmentSize     int64
	mapReads        bool
	sync            string
	syncInterval    time.Duration
	engine          string
	logLevel        slog.Level
	logFormat       string
	authToken       string
	tlsCert         string
	tlsKey          string
	tlsCertificate  *tls.Certificate
	maxValueSize    int64
	maxBodySize     int64
	maxBatchOps     int
	maxConnections  int
	minBodyRate     int64
	shutdownTimeout time.Duration
	showVersion     bool
	bench           benchConfig
	cluster         clusterConfig
}

// usageError is a bad flag or environment value: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// newFlagSet declares every flag on cfg with its default. The values
// check themselves, so a bad value fails where it is set, naming the flag
// or environment variable.
func newFlagSet(cfg *config) *flag.FlagSet {
	def := storage.DefaultConfig()
	fs := flag.NewFlagSet("mantisdb", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseConfig reports errors itself
	*cfg = config{
		port:            8080,
		respPort:        6379,
		bind:            "127.0.0.1",
		dataDir:         def.DataDir,
		cacheSize:       def.CacheSize,
		segmentSize:     def.SegmentSize,
		sync:            string(def.Sync),
		syncInterval:    def.SyncInterval,
		engine:          storage.DefaultEngine,
		logLevel:        slog.LevelInfo,
		logFormat:       "text",
		maxValueSize:    storage.DefaultMaxValueSize,
		maxBatchOps:     api.DefaultMaxBatchOps,
		maxConnections:  defaultMaxConnections,
		minBodyRate:     defaultMinBodyRate,
		shutdownTimeout: 30 * time.Second,
	}
	fs.Var(&intValue{&cfg.port, 0, 65535}, "port", "TCP port to listen on; 0 picks a free one (the start-up log names it)")
	fs.Var(&intValue{&cfg.respPort, -1, 65535}, "resp-port",
		"TCP port of the Redis protocol (RESP2/RESP3) on --bind; 0 picks a free one (the start-up log names it), -1 turns it off")
	fs.Var(&durationValue{&cfg.respIdle, 0}, "resp-idle-timeout", "close a Redis-protocol connection idle this long; 0 never does (Redis's timeout 0)")
	fs.Var(&choiceValue{&cfg.respTransport, []string{resp.TransportEventLoop, resp.TransportGoroutines}}, "resp-transport",
		"how Redis-protocol connections are served: eventloop (epoll loops, Linux) or goroutines (one goroutine per connection); by default eventloop (under --sync always the loops run plain writes and reply once a pass's sync is done; other writes move their connection to a goroutine while they last), goroutines in a cluster")
	fs.Var(&intValue{&cfg.respLoops, 0, 1024}, "resp-loops",
		"event loops of --resp-transport eventloop; 0 picks one per CPU (GOMAXPROCS), one per two CPUs under --sync always")
	fs.StringVar(&cfg.bind, "bind", cfg.bind, "address to listen on; 0.0.0.0 opens the server to the network, so set --auth-token too")
	fs.StringVar(&cfg.dataDir, "data-dir", cfg.dataDir, "directory of the database files, created with mode 0700 if missing")
	fs.Var(&sizeValue{&cfg.cacheSize, 0, math.MaxInt64}, "cache-size", "value cache budget of the rust engine; 0 disables the cache")
	fs.Var(&sizeValue{&cfg.segmentSize, 4096, 1 << 40}, "segment-size",
		"log segment size of the rust engine (at least 4KiB): smaller reclaims dead space and restarts sooner, with more files")
	fs.BoolVar(&cfg.mapReads, "map-reads", true,
		"read closed log segments of the rust engine through memory maps (no system call per read); false reads them with pread, so a disk read error fails the request instead of ending the process with SIGBUS")
	fs.Var(&choiceValue{&cfg.sync, []string{"always", "interval", "never"}}, "sync",
		"durability: always (acknowledge after fdatasync), interval (sync every --sync-interval), never (the OS decides)")
	fs.Var(&durationValue{&cfg.syncInterval, time.Millisecond}, "sync-interval", "sync period of --sync interval (at least 1ms)")
	fs.Var(&choiceValue{&cfg.engine, []string{"rust", "memory", "both"}}, "engine",
		"storage engine: rust (durable; needs a -tags rust build) or memory (not durable); both only with --benchmark-only")
	fs.Var(&levelValue{&cfg.logLevel}, "log-level", "log level: debug (one line per request), info, warn or error")
	fs.Var(&choiceValue{&cfg.logFormat, []string{"text", "json"}}, "log-format", "log format: text or json")
	fs.StringVar(&cfg.authToken, "auth-token", "", "bearer token every HTTP route but /health requires, and the password of Redis AUTH; prefer MANTISDB_AUTH_TOKEN, since flags show in ps")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate file; serves HTTPS (needs --tls-key)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.Var(&sizeValue{&cfg.maxValueSize, 1, 1 << 30}, "max-value-size", "longest value accepted (at most 1GiB)")
	fs.Var(&sizeValue{&cfg.maxBodySize, 1, math.MaxInt64}, "max-body-size", "largest request body (default --max-value-size + 1MiB)")
	fs.Var(&intValue{&cfg.maxBatchOps, 1, math.MaxInt32}, "max-batch-ops", "most operations in one batch or transaction")
	fs.Var(&intValue{&cfg.maxConnections, 1, 1 << 20}, "max-connections",
		"most client connections open at once, per protocol: more HTTP clients wait to be accepted, more Redis clients are refused (ERR max number of clients reached). Keep it under the open-file limit (ulimit -n), which the engine's files share")
	fs.Var(&sizeValue{&cfg.minBodyRate, 0, math.MaxInt64}, "min-body-rate",
		"slowest average rate, per second, a request body may arrive at after its first 5s; slower ones are cut off with 408. 0 disables the check")
	fs.Var(&durationValue{&cfg.shutdownTimeout, time.Millisecond}, "shutdown-timeout", "how long shutdown waits for requests in flight")
	fs.BoolVar(&cfg.showVersion, "version", false, "print the version, Go version and engines, then exit")
	addBenchFlags(fs, &cfg.bench)
	addClusterFlags(fs, &cfg.cluster)
	return fs
}

// parseConfig merges args, then the environment (getenv), then the
// defaults, and checks the result. It returns flag.ErrHelp for --help.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := newFlagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		// The flag package names flags with one dash; --help shows two.
		msg := strings.NewReplacer("flag -", "flag --", "defined: -", "defined: --").Replace(err.Error())
		return cfg, &usageError{errors.New(msg)}
	}
	if fs.NArg() > 0 {
		return cfg, usagef("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	// source names where each value came from, for error messages.
	source := make(map[string]string)
	fs.Visit(func(f *flag.Flag) { source[f.Name] = "--" + f.Name })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || source[f.Name] != "" || noEnv[f.Name] {
			return
		}
		name := envName(f.Name)
		val := getenv(name)
		if val == "" {
			return
		}
		if err := f.Value.Set(val); err != nil {
			envErr = usagef("invalid value %q for environment variable %s: %v", val, name, err)
			return
		}
		source[f.Name] = name
	})
	if envErr != nil {
		return cfg, envErr
	}
	return cfg, cfg.check(source)
}

// check validates what no single value can: combinations and files.
func (cfg *config) check(source map[string]string) error {
	from := func(name string) string {
		if s := source[name]; s != "" {
			return s
		}
		return "--" + name + " (default)"
	}
	if err := cfg.checkBenchmark(from, source); err != nil {
		return err
	}
	if err := cfg.checkCluster(from); err != nil {
		return err
	}
	if cfg.engine == "rust" && !storage.RustAvailable {
		return usagef("%s: the rust engine is not in this build (build with -tags rust, e.g. make build-rust), or use --engine memory", from("engine"))
	}
	if source["max-body-size"] == "" {
		cfg.maxBodySize = cfg.maxValueSize + 1<<20
	}
	if strings.TrimSpace(cfg.bind) == "" {
		return usagef("%s: the bind address is empty", from("bind"))
	}
	if strings.TrimSpace(cfg.dataDir) == "" {
		return usagef("%s: the data directory is empty", from("data-dir"))
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together: give both files or neither")
	}
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return usagef("%s / %s: %v", from("tls-cert"), from("tls-key"), err)
		}
		cfg.tlsCertificate = &cert
	}
	return nil
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// printUsage writes --help: every flag with its environment variable,
// meaning and default.
func printUsage(w io.Writer) {
	var cfg config
	fs := newFlagSet(&cfg)
	fmt.Fprintf(w, `Usage: mantisdb [flags]
       mantisdb <command> [flags]    operator commands: check, stats, dump,
                                     load, backup, compact ('mantisdb help')

MantisDB key-value server: HTTP/JSON API (see docs/api/openapi.yaml) and the
Redis protocol (see docs/guide/redis.md) on one keyspace.
Every flag can also be set with the environment variable shown beside it;
a flag on the command line wins over the environment, and an empty variable
counts as unset. Sizes are bytes, or take a suffix: B, KB/MB/GB/TB (powers
of 1000) or KiB/MiB/GiB/TiB (powers of 1024), e.g. 64MiB or 1.5GB.

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if t, ok := f.Value.(interface{ Type() string }); ok {
			typ = t.Type()
		}
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		if !noEnv[f.Name] {
			line += "  [" + envName(f.Name) + "]"
		}
		fmt.Fprintln(w, line)
		fmt.Fprintf(w, "        %s", usage)
		switch {
		case f.Name == "max-body-size" || f.Name == "version":
		case f.DefValue == "":
			fmt.Fprint(w, " (default: none)")
		default:
			fmt.Fprintf(w, " (default: %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintln(w, "  --help\n        print this help, then exit")
	fmt.Fprint(w, `
With --benchmark-only it runs the benchmark suite instead of serving
(docs/performance/benchmark-mode.md).

Exit codes: 0 after a clean shutdown (SIGINT or SIGTERM), 1 when the server
fails, 2 for a bad flag or environment value. With --benchmark-only: 0 when
every test met its targets, 1 when the suite could not run to the end, 3
when a test missed a target.
`)
}
