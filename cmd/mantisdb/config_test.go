package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		port: 8080, respPort: 6379, bind: "127.0.0.1", dataDir: "./data", cacheSize: 64 << 20, segmentSize: 64 << 20, mapReads: true,
		sync: "always", syncInterval: 100 * time.Millisecond, engine: storage.DefaultEngine,
		logLevel: slog.LevelInfo, logFormat: "text",
		maxValueSize: 64 << 20, maxBodySize: 65 << 20, maxBatchOps: 10000,
		maxConnections: 1024, minBodyRate: 16 << 10,
		shutdownTimeout: 30 * time.Second,
		cluster:         clusterConfig{raftAddr: "127.0.0.1:7000", consistency: "linearizable"},
	}
	if cfg != want {
		t.Fatalf("defaults\n got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigPrecedence(t *testing.T) {
	vars := map[string]string{
		"MANTISDB_PORT":             "9000",
		"MANTISDB_BIND":             "0.0.0.0",
		"MANTISDB_DATA_DIR":         "/env/dir",
		"MANTISDB_CACHE_SIZE":       "1GiB",
		"MANTISDB_SYNC":             "interval",
		"MANTISDB_SYNC_INTERVAL":    "250ms",
		"MANTISDB_LOG_LEVEL":        "DEBUG",
		"MANTISDB_AUTH_TOKEN":       "from-env",
		"MANTISDB_MAX_VALUE_SIZE":   "1MB",
		"MANTISDB_MAX_BATCH_OPS":    "7",
		"MANTISDB_SHUTDOWN_TIMEOUT": "2s",
		"MANTISDB_RESP_LOOPS":       "3",
		"MANTISDB_MAP_READS":        "false",
		"MANTISDB_VERSION":          "true", // --version has no variable
	}
	cfg, err := parseConfig([]string{"--port", "9001", "-data-dir=/flag/dir", "--max-body-size=3MiB"}, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.port != 9001 || cfg.dataDir != "/flag/dir" {
		t.Fatalf("flags lost to the environment: %+v", cfg)
	}
	if cfg.bind != "0.0.0.0" || cfg.cacheSize != 1<<30 || cfg.sync != "interval" ||
		cfg.syncInterval != 250*time.Millisecond || cfg.logLevel != slog.LevelDebug ||
		cfg.authToken != "from-env" || cfg.maxValueSize != 1e6 || cfg.maxBatchOps != 7 ||
		cfg.shutdownTimeout != 2*time.Second || cfg.respLoops != 3 || cfg.mapReads || cfg.showVersion {
		t.Fatalf("environment not applied: %+v", cfg)
	}
	if cfg.maxBodySize != 3<<20 {
		t.Fatalf("max body size %d, want the flag's 3MiB", cfg.maxBodySize)
	}
	// Unset, the body limit follows the value limit.
	cfg, _ = parseConfig([]string{"--max-value-size", "10KiB"}, env(nil))
	if cfg.maxBodySize != 10<<10+1<<20 {
		t.Fatalf("derived max body size %d", cfg.maxBodySize)
	}
	// An empty variable counts as unset.
	cfg, _ = parseConfig(nil, env(map[string]string{"MANTISDB_PORT": ""}))
	if cfg.port != 8080 {
		t.Fatalf("empty MANTISDB_PORT gave port %d", cfg.port)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		msg  string
	}{
		{"port word", []string{"--port", "http"}, nil, `invalid value "http" for flag --port`},
		{"port range", []string{"--port=70000"}, nil, "70000 is outside 0..65535"},
		{"port env", nil, map[string]string{"MANTISDB_PORT": "-1"}, "environment variable MANTISDB_PORT"},
		{"sync", []string{"--sync", "sometimes"}, nil, "--sync"},
		{"sync env", nil, map[string]string{"MANTISDB_SYNC": "sometimes"}, "MANTISDB_SYNC"},
		{"sync interval", []string{"--sync-interval", "0s"}, nil, "--sync-interval"},
		{"cache size", []string{"--cache-size", "lots"}, nil, "--cache-size"},
		{"cache size env", nil, map[string]string{"MANTISDB_CACHE_SIZE": "-5MB"}, "MANTISDB_CACHE_SIZE"},
		{"segment size too small", []string{"--segment-size", "1KiB"}, nil, "--segment-size"},
		{"segment size env", nil, map[string]string{"MANTISDB_SEGMENT_SIZE": "big"}, "MANTISDB_SEGMENT_SIZE"},
		{"value size over 1GiB", []string{"--max-value-size", "2GiB"}, nil, "outside"},
		{"body size zero", []string{"--max-body-size", "0"}, nil, "--max-body-size"},
		{"batch ops", []string{"--max-batch-ops", "0"}, nil, "--max-batch-ops"},
		{"connections", []string{"--max-connections", "0"}, nil, "--max-connections"},
		{"resp loops", []string{"--resp-loops", "-1"}, nil, "--resp-loops"},
		{"resp loops env", nil, map[string]string{"MANTISDB_RESP_LOOPS": "many"}, "MANTISDB_RESP_LOOPS"},
		{"body rate", nil, map[string]string{"MANTISDB_MIN_BODY_RATE": "fast"}, "MANTISDB_MIN_BODY_RATE"},
		{"log level", []string{"--log-level", "verbose"}, nil, "--log-level"},
		{"log format", nil, map[string]string{"MANTISDB_LOG_FORMAT": "xml"}, "MANTISDB_LOG_FORMAT"},
		{"engine", []string{"--engine", "sqlite"}, nil, "--engine"},
		{"shutdown timeout", []string{"--shutdown-timeout", "soon"}, nil, "--shutdown-timeout"},
		{"tls half", []string{"--tls-cert", "cert.pem"}, nil, "--tls-cert and --tls-key"},
		{"tls missing files", []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, nil, "--tls-cert"},
		{"empty bind", []string{"--bind", " "}, nil, "--bind"},
		{"unknown flag", []string{"--prot", "1"}, nil, "--prot"},
		{"stray argument", []string{"serve"}, nil, `"serve"`},
	}
	if !storage.RustAvailable {
		cases = append(cases, struct {
			name string
			args []string
			env  map[string]string
			msg  string
		}{"rust not built", nil, map[string]string{"MANTISDB_ENGINE": "rust"}, "MANTISDB_ENGINE: the rust engine is not in this build"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, env(tc.env), &stdout, &stderr); code != 2 {
				t.Fatalf("exit code %d, want 2; stderr %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.msg) {
				t.Fatalf("stderr %q does not name %q", stderr.String(), tc.msg)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{
		"0": 0, "1048576": 1 << 20, "64MB": 64e6, "64mb": 64e6, "64MiB": 64 << 20, "1GiB": 1 << 30,
		"1.5GiB": 3 << 29, "512 KiB": 512 << 10, "10B": 10, "2kb": 2000, "1TiB": 1 << 40, "1TB": 1e12,
	}
	for in, want := range cases {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MB", "-1", "1.5.5MB", "ten", "1PB", "9223372036854775807KiB", "1e400", "NaN"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		}
	}
	for n, want := range map[int64]string{0: "0B", 1 << 20: "1MiB", 64 << 20: "64MiB", 1000: "1000B", 3 << 29: "1536MiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
	help := stdout.String()
	for _, want := range []string{
		"--port int  [MANTISDB_PORT]", "(default: 8080)", "--data-dir", "(default: ./data)",
		"--cache-size size  [MANTISDB_CACHE_SIZE]", "(default: 64MiB)", "--sync always|interval|never",
		"(default: always)", "--sync-interval", "(default: 100ms)", "--engine", "--log-level", "--auth-token",
		"--tls-cert", "--tls-key", "--max-value-size", "--max-body-size", "--max-batch-ops", "(default: 10000)",
		"--shutdown-timeout", "(default: 30s)", "--version", "--help", "Exit codes",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if strings.Contains(help, "MANTISDB_VERSION") {
		t.Error("--help offers MANTISDB_VERSION")
	}
	stdout.Reset()
	if code := run([]string{"--version"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("--version exit code %d", code)
	}
	for _, want := range []string{"mantisdb dev", "go: go1.", "engines: memory available"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--version output %q lacks %q", stdout.String(), want)
		}
	}
}
