package bench

import (
	"fmt"
	"time"
)

// Targets are the figures every test must reach to pass: the original
// goals of MantisDB, 5,000 operations a second sustained over the whole
// test with a p99 latency under one second, and no failed operations.
type Targets struct {
	MinOpsPerSec float64 `json:"min_ops_per_sec"`
	// MaxP99Us is the bound p99 must stay under, in microseconds.
	MaxP99Us int64 `json:"max_p99_us"`
}

// DefaultTargets are the original targets.
var DefaultTargets = Targets{MinOpsPerSec: 5000, MaxP99Us: int64(time.Second / time.Microsecond)}

// judge sets r.Pass and r.Failures against t.
func (t Targets) judge(r *Result) {
	r.Failures = nil
	if r.OpsPerSec < t.MinOpsPerSec {
		r.Failures = append(r.Failures, fmt.Sprintf("%.0f ops/s is below %.0f", r.OpsPerSec, t.MinOpsPerSec))
	}
	if r.Ops == 0 {
		r.Failures = append(r.Failures, "no operation succeeded")
	} else if r.Latency.P99 >= t.MaxP99Us {
		r.Failures = append(r.Failures, fmt.Sprintf("p99 %s is not under %s", formatUs(r.Latency.P99), formatUs(t.MaxP99Us)))
	}
	if r.Errors > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d errors", r.Errors))
	}
	r.Pass = len(r.Failures) == 0
}

// overall is true when every result of every test passed.
func overall(tests []TestReport) bool {
	for _, t := range tests {
		for _, r := range t.Engines {
			if !r.Pass {
				return false
			}
		}
	}
	return len(tests) > 0
}

// formatUs prints a latency in microseconds in a readable unit.
func formatUs(us int64) string {
	switch {
	case us >= 1_000_000:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	case us >= 10_000:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	}
	return fmt.Sprintf("%dus", us)
}
