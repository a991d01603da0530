package bench

import (
	"slices"
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	ok := func() *Result {
		return &Result{Ops: 10_000, OpsPerSec: 5000, Latency: Latency{P99: 999_999}}
	}
	cases := []struct {
		name   string
		change func(*Result)
		fails  []string // substrings of the failures, in order; none means PASS
	}{
		{"exactly at the targets", func(*Result) {}, nil},
		{"slow", func(r *Result) { r.OpsPerSec = 4999.4 }, []string{"4999 ops/s is below 5000"}},
		{"p99 of one second is not under one second", func(r *Result) { r.Latency.P99 = 1_000_000 }, []string{"p99 1.00s is not under 1.00s"}},
		{"errors", func(r *Result) { r.Errors = 3 }, []string{"3 errors"}},
		{"nothing succeeded", func(r *Result) { r.Ops, r.OpsPerSec, r.Errors = 0, 0, 7 },
			[]string{"0 ops/s is below 5000", "no operation succeeded", "7 errors"}},
		{"every target missed", func(r *Result) { r.OpsPerSec, r.Latency.P99, r.Errors = 10, 2_500_000, 1 },
			[]string{"10 ops/s", "p99 2.50s", "1 errors"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			r.Failures = []string{"stale"}
			tc.change(r)
			DefaultTargets.judge(r)
			if r.Pass != (len(tc.fails) == 0) || len(r.Failures) != len(tc.fails) {
				t.Fatalf("pass %v, failures %q; want %q", r.Pass, r.Failures, tc.fails)
			}
			for i, want := range tc.fails {
				if !strings.Contains(r.Failures[i], want) {
					t.Fatalf("failure %d is %q, want %q", i, r.Failures[i], want)
				}
			}
		})
	}
}

func TestOverall(t *testing.T) {
	pass, fail := &Result{Pass: true}, &Result{Pass: false}
	test := func(rs ...*Result) TestReport {
		tr := TestReport{Engines: map[string]*Result{}}
		for i, r := range rs {
			tr.Engines[[]string{"rust", "memory"}[i]] = r
		}
		return tr
	}
	if !overall([]TestReport{test(pass, pass), test(pass)}) {
		t.Fatal("all passed, overall FAIL")
	}
	if overall([]TestReport{test(pass, pass), test(pass, fail)}) {
		t.Fatal("one engine failed one test, overall PASS")
	}
	if overall(nil) {
		t.Fatal("no test ran, overall PASS")
	}
}

func TestTargetsString(t *testing.T) {
	got := DefaultTargets.String()
	for _, want := range []string{"5000 ops/s", "p99 under 1.00s", "no errors"} {
		if !strings.Contains(got, want) {
			t.Fatalf("%q does not say %q", got, want)
		}
	}
	if !slices.Equal([]string{formatUs(999), formatUs(12_345), formatUs(1_500_000)}, []string{"999us", "12.3ms", "1.50s"}) {
		t.Fatal("formatUs")
	}
}
