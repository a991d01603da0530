package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// TestMain makes the test binary a lane worker when a test's run starts it
// as one (see workerEnv): TestQuick's engines each run in such a worker.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

// TestAdapters checks every adapter's semantics directly: a missing key is
// ErrNotFound, a batch is visible, a scan stops at its limit and at the end
// of its prefix and visits keys in order with their values.
func TestAdapters(t *testing.T) {
	if !storage.RustAvailable {
		t.Log("built without -tags rust: the mantisdb (Rust) engine is skipped")
	}
	for _, e := range engines() {
		for _, sync := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sync=%v", e.Name, sync), func(t *testing.T) {
				s, err := e.Open(t.TempDir(), sync)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if _, err := s.Get([]byte("a")); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
				}
				if err := s.Put([]byte("a"), []byte("1")); err != nil {
					t.Fatal(err)
				}
				var kvs []KV
				for i := range 20 {
					kvs = append(kvs, KV{[]byte(fmt.Sprintf("p%02d", i)), []byte(fmt.Sprintf("v%d", i))})
				}
				kvs = append(kvs, KV{[]byte("q"), []byte("outside")})
				if err := s.Batch(kvs); err != nil {
					t.Fatal(err)
				}
				if v, err := s.Get([]byte("p07")); err != nil || string(v) != "v7" {
					t.Fatalf("Get p07 = %q, %v", v, err)
				}
				for _, limit := range []int{5, 100} {
					var got []string
					n, err := s.Scan([]byte("p"), limit, func(k, v []byte) {
						got = append(got, string(k)+"="+string(v))
					})
					want := min(limit, 20)
					if err != nil || n != want || len(got) != want {
						t.Fatalf("Scan(p, %d) = %d (%d visits), %v; want %d", limit, n, len(got), err, want)
					}
					for i, kv := range got {
						if kv != fmt.Sprintf("p%02d=v%d", i, i) {
							t.Fatalf("Scan visit %d = %s", i, kv)
						}
					}
				}
			})
		}
	}
}

// TestQuick runs every engine through every workload at both durabilities
// with tiny sizes, comparing every value read and every pair scanned with
// what was written: each engine in a worker process of its own (the
// default), and every engine in this process (-one-process).
func TestQuick(t *testing.T) {
	for _, mode := range []string{"workers", "one-process"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"-quick", "-dir", t.TempDir()}
			if mode == "one-process" {
				args = append(args, "-one-process")
			}
			testQuick(t, args)
		})
	}
}

func testQuick(t *testing.T, args []string) {
	o, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	run, err := runAll(o, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(o.values) * len(o.syncs); len(run.Sets) != want {
		t.Fatalf("%d result tables, want %d", len(run.Sets), want)
	}
	for _, s := range run.Sets {
		if len(s.Engines) != len(engines()) {
			t.Fatalf("%d engines in a table, want %d", len(s.Engines), len(engines()))
		}
		for _, e := range s.Engines {
			if e.Error != "" {
				t.Errorf("%s (%d B, %s): %s", e.Engine, s.ValueSize, s.Sync, e.Error)
			}
			for _, w := range workloads {
				c, ok := findCell(e, w.Name)
				if ok != (w.Writes || s.Sync == "never") {
					t.Errorf("%s %s (%s): cell present = %v", e.Engine, w.Name, s.Sync, ok)
					continue
				}
				if ok && (c.Error != "" || c.Ops == 0 || c.OpsPerSec <= 0) {
					t.Errorf("%s %s (%d B, %s): %+v", e.Engine, w.Name, s.ValueSize, s.Sync, c)
				}
			}
		}
	}
	doc := renderDoc(run)
	for _, want := range []string{"## What was run", "### 3000 keys × 100 B, sync `never`", "### 3000 keys × 4 KiB, sync `always`", "### 3000 keys × 1 KiB, sync `always`", "prefix scan of 1,000 keys"} {
		if !strings.Contains(doc, want) {
			t.Errorf("doc lacks %q", want)
		}
	}
	if storage.RustAvailable && !strings.Contains(doc, "## Scorecard") {
		t.Error("doc lacks the scorecard")
	}
	// -report renders the same doc from the run's JSON, without running.
	path := filepath.Join(t.TempDir(), "results.json")
	if err := writeRun(path, run); err != nil {
		t.Fatal(err)
	}
	ro, err := parseFlags([]string{"-report", path})
	if err != nil {
		t.Fatal(err)
	}
	again, err := readRun(ro.report)
	if err != nil {
		t.Fatal(err)
	}
	if got := renderDoc(again); got != doc {
		t.Errorf("doc rendered from %s differs from the run's doc:\n%s", path, firstDiff(got, doc))
	}
}

// TestPublishedPageMatchesResults checks that docs/performance/peers.md is
// what results.json and the current analysis.go and report.go render (with
// -tags rust, as the page was made), so a
// change to the reasons (or the layout) is published with -report and the
// page never mixes an old rendering with new reasons.
func TestPublishedPageMatchesResults(t *testing.T) {
	if !storage.RustAvailable {
		// The engine table and the losing cells are rendered only for
		// the MantisDB engine the published run included.
		t.Skip("built without -tags rust: the published page names the Rust engine")
	}
	run, err := readRun("results.json")
	if err != nil {
		t.Fatal(err)
	}
	const page = "../../docs/performance/peers.md"
	want, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if got := renderDoc(run); got != string(want) {
		t.Errorf("%s is not what results.json renders; regenerate it (go run -tags rust . -report results.json -doc %s):\n%s", page, page, firstDiff(got, string(want)))
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  rendered:  %q\n  published: %q", i+1, gl, wl)
		}
	}
	return "(equal)"
}

// TestVerifyCatchesWrongValues makes sure the quick mode's checks can fail:
// a store that returns a wrong value must be reported.
func TestVerifyCatchesWrongValues(t *testing.T) {
	s, err := memoryEngine.Open(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := newDataset(scanSize, 16, 10)
	r := &runner{s: corrupting{s}, d: d, lim: limits{ops: 100, cap: 1e9, rounds: 1, verify: true}}
	if c := r.run(workloads[0], 1); c.Error != "" {
		t.Fatal(c.Error)
	}
	for _, w := range workloads {
		if w.kind == getCold || w.kind == scanPrefix {
			if c := r.run(w, 2); c.Error == "" {
				t.Errorf("%s: a wrong value went unnoticed", w.Name)
			}
		}
	}
}

// corrupting flips the first byte of every value it reads.
type corrupting struct{ Store }

func (c corrupting) Get(key []byte) ([]byte, error) {
	v, err := c.Store.Get(key)
	if err == nil && len(v) > 0 {
		v = bytes.Clone(v)
		v[0] ^= 1
	}
	return v, err
}

func (c corrupting) Scan(prefix []byte, n int, visit func(k, v []byte)) (int, error) {
	return c.Store.Scan(prefix, n, func(k, v []byte) {
		v = bytes.Clone(v)
		v[0] ^= 1
		visit(k, v)
	})
}

// testLog sends the progress lines to the test log (seen with -v).
type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestEveryLossHasAReason makes sure that, whatever cell a run loses (any
// workload, durability and value size of the command's defaults), the doc
// gives it a reason from analysis.go rather than listing it as unexplained.
func TestEveryLossHasAReason(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.values) != 3 {
		t.Fatalf("default sizes %v, want three", o.values)
	}
	for i, v := range o.values {
		for _, sync := range []string{"never", "always"} {
			for _, w := range workloads {
				if sync == "always" && !w.Writes {
					continue
				}
				l := loss{set: SetResult{Keys: o.keys[i], ValueSize: v, Sync: sync}, w: w, peer: "pebble", ratio: 0.5}
				if id := explain(l); id == unexplained {
					t.Errorf("%s at %d B, %s: no reason", w.Name, v, sync)
				} else if explanationText(id) == "" || explanationTitle(id) == "" {
					t.Errorf("%s: reason %q has no text", w.Name, id)
				}
			}
		}
	}
	// And the doc renders an unexplained cell as such, so a new kind of
	// loss cannot hide.
	if got := explanationTitle(unexplained); got != "Not yet explained." {
		t.Errorf("unexplained title %q", got)
	}
}

// TestWorkerLane drives one engine in a worker process through the lane
// protocol: its cells come back, its errors come back as errors, and a
// worker that dies ends its lane with an error instead of a hang.
func TestWorkerLane(t *testing.T) {
	spec := laneSpec{Engine: "memory", Dir: t.TempDir(), Keys: 3000, ValueSize: 100, Hot: 300, Ops: 3000, CapNs: int64(time.Second), Rounds: 2, Verify: true}
	if _, err := openWorker(laneSpec{Engine: "nope", Dir: t.TempDir(), Keys: 1000, ValueSize: 10, Hot: 1}); err == nil || !strings.Contains(err.Error(), `unknown engine "nope"`) {
		t.Fatalf("open of an unknown engine: %v", err)
	}
	l, err := openWorker(spec)
	if err != nil {
		t.Fatal(err)
	}
	seq := workloads[slices.IndexFunc(workloads, func(w Workload) bool { return w.kind == putSeq })]
	scan := workloads[slices.IndexFunc(workloads, func(w Workload) bool { return w.kind == scanPrefix })]
	if err := l.start(seq, 1, ""); err != nil {
		t.Fatal(err)
	}
	for range spec.Rounds {
		if err := l.round(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := l.result()
	if err != nil || c.Workload != seq.Name || c.Ops != int64(spec.Keys) || len(c.Rounds) != 2 || c.Error != "" {
		t.Fatalf("put-seq: %+v, %v; want %d ops in 2 rounds", c, err, spec.Keys)
	}
	if _, err := l.result(); err == nil || !strings.Contains(err.Error(), "result before start") {
		t.Fatalf("a second result: %v", err)
	}
	// The scan checks every pair against what put-seq wrote (Verify).
	if err := l.start(scan, 6, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.round(); err != nil {
		t.Fatal(err)
	}
	if c, err := l.result(); err != nil || c.Ops == 0 || c.Error != "" {
		t.Fatalf("scan: %+v, %v", c, err)
	}
	if err := l.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err = l.round()
	if err == nil || !strings.Contains(err.Error(), "memory worker") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("a round after the worker was killed: %v", err)
	}
	if err2 := l.close(); err2 == nil {
		t.Fatal("close of a dead worker succeeded")
	}
}
