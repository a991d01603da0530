package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

func TestBenchmarkFlagErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		msg  string
	}{
		{"unknown level", []string{"--benchmark-only", "--benchmark-stress=insane"}, nil,
			`invalid value "insane" for flag --benchmark-stress: unknown stress level "insane" (want light, medium, heavy, extreme)`},
		{"the tests' level is not public", []string{"--benchmark-only", "--benchmark-stress", "test"}, nil, "--benchmark-stress"},
		{"level from the environment", []string{"--benchmark-only"}, map[string]string{"MANTISDB_BENCHMARK_STRESS": "max"}, "MANTISDB_BENCHMARK_STRESS"},
		{"level without benchmark mode", []string{"--benchmark-stress=light"}, nil, "--benchmark-stress needs --benchmark-only"},
		{"output without benchmark mode", []string{"--benchmark-output=x.json"}, nil, "--benchmark-output needs --benchmark-only"},
		{"bad URL", []string{"--benchmark-only", "--benchmark-target=127.0.0.1:8080"}, nil, "--benchmark-target: \"127.0.0.1:8080\": want an http:// or https:// URL"},
		{"URL with a path", []string{"--benchmark-only", "--benchmark-target=http://localhost:8080/api"}, nil, "without a path"},
		{"remote target", []string{"--benchmark-only", "--benchmark-target=http://192.0.2.7:8080"}, nil,
			"refusing to benchmark 192.0.2.7:8080"},
		{"allow remote without a target", []string{"--benchmark-only", "--benchmark-allow-remote"}, nil, "needs --benchmark-target"},
		{"engine with a target", []string{"--benchmark-only", "--benchmark-target=http://127.0.0.1:1", "--engine=memory"}, nil,
			"--engine does not apply with --benchmark-target"},
		{"sync with a target", []string{"--benchmark-only", "--benchmark-target=http://127.0.0.1:1", "--sync=never"}, nil,
			"--sync does not apply"},
		{"output directory missing", []string{"--benchmark-only", "--benchmark-output", filepath.Join(dir, "no", "such", "dir", "b.json")}, nil,
			"--benchmark-output: cannot write to the directory"},
		{"output is a directory", []string{"--benchmark-only", "--benchmark-output", dir}, nil, "is not a regular file"},
		{"both without benchmark mode", []string{"--engine=both"}, nil, "--engine: both is only for --benchmark-only"},
		{"bad sync", []string{"--benchmark-only", "--sync=sometimes"}, nil, "--sync"},
	}
	if !storage.RustAvailable {
		cases = append(cases, struct {
			name string
			args []string
			env  map[string]string
			msg  string
		}{"both without rust", []string{"--benchmark-only", "--engine=both"}, nil,
			"--engine: both needs the rust engine, and the rust engine is not in this build"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, env(tc.env), &stdout, &stderr); code != 2 {
				t.Fatalf("exit code %d, want 2; stderr %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.msg) {
				t.Fatalf("stderr %q does not say %q", stderr.String(), tc.msg)
			}
			if stdout.Len() != 0 {
				t.Fatalf("a refused benchmark printed %q", stdout.String())
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the output checks left files: %v", entries)
	}
}

func TestBenchmarkConfig(t *testing.T) {
	cfg, err := parseConfig([]string{"--benchmark-only", "--benchmark-stress=HEAVY", "--engine=memory", "--sync=never"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.bench.only || cfg.bench.level.Name != "heavy" || cfg.bench.targetURL != nil {
		t.Fatalf("config %+v", cfg.bench)
	}
	cfg, err = parseConfig([]string{"--benchmark-only"}, env(nil))
	if err != nil || cfg.bench.level.Name != "light" || cfg.engine != storage.DefaultEngine {
		t.Fatalf("defaults: level %q engine %q, %v", cfg.bench.level.Name, cfg.engine, err)
	}
	// The server's settings from the environment do not stop a target run,
	// and a remote target passes with --benchmark-allow-remote.
	cfg, err = parseConfig([]string{"--benchmark-only", "--benchmark-target=https://db.example.com:8443/", "--benchmark-allow-remote"},
		env(map[string]string{"MANTISDB_ENGINE": "memory", "MANTISDB_BENCHMARK_ALLOW_REMOTE": "false"}))
	if err != nil || cfg.bench.targetURL.String() != "https://db.example.com:8443" {
		t.Fatalf("remote target: %v, %v", cfg.bench.targetURL, err)
	}
	// Benchmark variables in a server's environment do not change the server.
	cfg, err = parseConfig(nil, env(map[string]string{"MANTISDB_BENCHMARK_STRESS": "heavy", "MANTISDB_BENCHMARK_ONLY": "true"}))
	if err != nil || cfg.bench.only {
		t.Fatalf("server with benchmark variables: only=%v, %v", cfg.bench.only, err)
	}
}

func TestBenchmarkHelp(t *testing.T) {
	var stdout bytes.Buffer
	if code := run([]string{"--help"}, env(nil), &stdout, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"--benchmark-only\n", "--benchmark-stress light|medium|heavy|extreme  [MANTISDB_BENCHMARK_STRESS]", "(default: light)",
		"--benchmark-output string", "--benchmark-target string", "--benchmark-allow-remote\n", "--engine rust|memory|both",
		"3\nwhen a test missed a target",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help does not show %q", want)
		}
	}
}

func TestBenchmarkUnreachableTarget(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// Port 1 on loopback: nothing listens there, so the connection is refused at once.
	code := run([]string{"--benchmark-only", "--benchmark-target=http://127.0.0.1:1"}, env(nil), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "reaching the server at http://127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
