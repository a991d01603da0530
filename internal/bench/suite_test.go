package bench

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/storage"
)

// checkReport fails unless the report, read back from its JSON, has every
// test on every engine with operations and without errors.
func checkReport(t *testing.T, rep *Report, engines ...string) *Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := rep.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Config.Engines, ",") != strings.Join(engines, ",") {
		t.Fatalf("engines %v, want %v", got.Config.Engines, engines)
	}
	if len(got.Tests) != len(tests) {
		t.Fatalf("%d tests in the report, want %d", len(got.Tests), len(tests))
	}
	for i, tr := range got.Tests {
		if tr.ID != tests[i].id {
			t.Errorf("test %d is %q, want %q", i, tr.ID, tests[i].id)
		}
		for _, e := range engines {
			r := tr.Engines[e]
			switch {
			case r == nil:
				t.Errorf("%s has no result for %s", tr.ID, e)
			case r.Ops <= 0 || r.Errors != 0 || r.FirstError != "":
				t.Errorf("%s on %s: %d ops, %d errors (%s)", tr.ID, e, r.Ops, r.Errors, r.FirstError)
			case r.Latency.Max < r.Latency.P50 || r.Latency.P50 < 1 || r.OpsPerSec <= 0:
				t.Errorf("%s on %s: implausible figures %+v", tr.ID, e, r)
			}
		}
	}
	return got
}

func engineNames() []string {
	if storage.RustAvailable {
		return []string{"rust", "memory"}
	}
	return []string{"memory"}
}

// TestSuiteInProcess runs the whole suite at the test level against every
// engine in this build (memory; rust too with -tags rust).
func TestSuiteInProcess(t *testing.T) {
	tmp := t.TempDir()
	var out bytes.Buffer
	cfg := storage.DefaultConfig()
	cfg.Sync = storage.SyncNever
	rep, err := Run(context.Background(), Options{
		Level: testLevel, Engines: engineNames(), Config: cfg, TempDir: tmp, Out: &out, Version: "test",
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	rep = checkReport(t, rep, engineNames()...)
	if rep.Config.Sync != "never" || rep.Config.Level != "test" || rep.MantisDBVersion != "test" {
		t.Errorf("config %+v", rep.Config)
	}
	for _, tr := range rep.Tests {
		if tr.ID == "transactions" && tr.Engines["memory"].Conflicts == 0 {
			t.Log("no transaction conflicted at this size (possible, not required)")
		}
		rate := tr.Engines["memory"].CacheHitRate
		if rate != nil {
			t.Errorf("%s: the memory engine has a cache hit rate %v", tr.ID, *rate)
		}
		if tr.ID == "memory_pressure" && storage.RustAvailable {
			r := tr.Engines["rust"]
			if r.CacheHitRate == nil || *r.CacheHitRate >= 1 {
				t.Errorf("rust under memory pressure: hit rate %v, want some misses", formatRate(r.CacheHitRate))
			}
		}
	}
	text := out.String()
	for _, want := range []string{"level test", "sync: never", "Summary", "Overall:", "Sequential Writes", "Transactions"} {
		if !strings.Contains(text, want) {
			t.Errorf("the output does not say %q:\n%s", want, text)
		}
	}
	if len(rep.Config.Engines) == 2 && !strings.Contains(text, "rust beside memory") {
		t.Errorf("no side-by-side table:\n%s", text)
	}
	if strings.Contains(text, "\r") {
		t.Error("progress noise without a terminal")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the temporary data directory was not removed: %v", entries)
	}
}

// TestSuiteOverHTTP runs the suite against internal/api over HTTP, with a
// token, and checks that it leaves no key behind.
func TestSuiteOverHTTP(t *testing.T) {
	engine, err := storage.NewStorageEngine("memory", storage.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Init(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	if err := engine.Put(context.Background(), "users/1", "not the benchmark's"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(engine, api.Options{AuthToken: "secret"}).Handler())
	defer srv.Close()
	target, err := ParseTarget(srv.URL, false)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep, err := Run(context.Background(), Options{Level: testLevel, Target: target, AuthToken: "secret", Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	rep = checkReport(t, rep, "memory")
	if rep.Config.Target != srv.URL || rep.Config.Sync != "" {
		t.Errorf("config %+v", rep.Config)
	}
	st, err := engine.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 1 {
		t.Errorf("%d keys left on the server, want only the one that was there before", st.Keys)
	}
	if !strings.Contains(out.String(), "over HTTP at "+srv.URL) {
		t.Errorf("the header does not name the target:\n%s", out.String())
	}

	_, err = Run(context.Background(), Options{Level: testLevel, Target: target, AuthToken: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong token: %v", err)
	}
}

// TestSuiteInterrupted stops at once when the context is cancelled, and
// still removes its data.
func TestSuiteInterrupted(t *testing.T) {
	tmp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, Options{Level: testLevel, Engines: []string{"memory"}, Config: storage.DefaultConfig(), TempDir: tmp})
	if err == nil {
		t.Fatal("a cancelled run succeeded")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the temporary data directory was not removed: %v", entries)
	}
}
