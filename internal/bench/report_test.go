package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	rate := 0.125
	return &Report{
		Version:         SchemaVersion,
		MantisDBVersion: "1.2.3",
		Started:         time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine:         Machine{Hostname: "h", GOOS: "linux", GOARCH: "amd64", NumCPU: 2, CPUModel: "AMD EPYC"},
		Config: RunConfig{Level: "light", Engines: []string{"rust", "memory"}, Sync: "never", Workers: 8, Keys: 10_000,
			ValueSize: 256, DurationS: 1.25, MaxOps: 100_000, PressureKeys: 20_000, PressureCacheBytes: 640_000, CacheSize: 64 << 20},
		Targets: DefaultTargets,
		Tests: []TestReport{{ID: "memory_pressure", Name: "Memory Pressure", Engines: map[string]*Result{
			"rust": {Ops: 100, OpsPerSec: 5000.5, Latency: Latency{P50: 1, P95: 2, P99: 3, P999: 4, Max: 5, Mean: 1.5},
				ElapsedS: 0.02, CacheHitRate: &rate, Note: "cache 625.0 KiB", Pass: true},
			"memory": {Ops: 90, OpsPerSec: 4500, Errors: 10, Conflicts: 3, FirstError: "boom", Latency: Latency{P50: 1},
				Failures: []string{"4500 ops/s is below 5000", "10 errors"}},
		}}},
		Pass: false,
	}
}

func TestReportRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.json")
	want := sampleReport()
	if err := want.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("WriteFile left %d files behind", len(entries))
	}
}

// TestReportSchema pins the field names other tools read.
func TestReportSchema(t *testing.T) {
	data, err := json.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	has := func(obj any, where string, keys ...string) {
		t.Helper()
		m, ok := obj.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, not an object", where, obj)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s has no %q", where, k)
			}
		}
	}
	has(doc, "report", "version", "machine", "config", "tests", "pass", "targets")
	has(doc["machine"], "machine", "hostname", "goos", "goarch", "num_cpu", "cpu_model")
	has(doc["config"], "config", "level", "engines", "sync", "workers", "keys", "value_size", "duration_s", "max_ops")
	test := doc["tests"].([]any)[0]
	has(test, "test", "id", "name", "engines")
	for _, engine := range []string{"rust", "memory"} {
		r := test.(map[string]any)["engines"].(map[string]any)[engine]
		has(r, engine, "ops", "ops_per_sec", "errors", "latency_us", "cache_hit_rate", "pass")
		has(r.(map[string]any)["latency_us"], "latency_us", "p50", "p95", "p99", "p999", "max", "mean")
	}
	if v := test.(map[string]any)["engines"].(map[string]any)["memory"].(map[string]any)["cache_hit_rate"]; v != nil {
		t.Errorf("an engine without cache lookups has cache_hit_rate %v, want null", v)
	}
	if doc["version"].(float64) != SchemaVersion {
		t.Errorf("version %v", doc["version"])
	}
}

func TestReadReportRefusesOtherVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(path, []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadReport(path); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("error %v", err)
	}
}

func TestCheckOutputPath(t *testing.T) {
	dir := t.TempDir()
	if err := CheckOutputPath(filepath.Join(dir, "new.json")); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "old.json")
	if err := os.WriteFile(existing, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckOutputPath(existing); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the check left %d files", len(entries))
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing", "x.json"): "cannot write to the directory",
		dir:                                     "not a regular file",
		" ":                                     "empty",
	} {
		if err := CheckOutputPath(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckOutputPath(%q) = %v, want %q", path, err, want)
		}
	}
}

func TestCPUModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpuinfo")
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n"
	if err := os.WriteFile(path, []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := cpuModel(path); got != "AMD EPYC 7B13" {
		t.Fatalf("cpuModel = %q", got)
	}
	if got := cpuModel(filepath.Join(t.TempDir(), "absent")); got != "" {
		t.Fatalf("cpuModel of a missing file = %q", got)
	}
}
