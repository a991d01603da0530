package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// printHeader says what is about to run, where, and against which targets.
func (s *session) printHeader(rep *Report, where string) {
	m, c := rep.Machine, rep.Config
	fmt.Fprintf(s.out, "MantisDB benchmark, level %s", c.Level)
	if rep.MantisDBVersion != "" {
		fmt.Fprintf(s.out, " (mantisdb %s)", rep.MantisDBVersion)
	}
	fmt.Fprintln(s.out)
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "CPU model unknown"
	}
	fmt.Fprintf(s.out, "machine: %s, %s/%s, %d CPUs, %s\n", m.Hostname, m.GOOS, m.GOARCH, m.NumCPU, cpu)
	fmt.Fprintf(s.out, "engines: %s, %s\n", strings.Join(c.Engines, " and "), where)
	if c.Target == "" {
		fmt.Fprintf(s.out, "sync: %s", c.Sync)
		if c.Sync == "interval" {
			fmt.Fprintf(s.out, " (every %v)", s.opts.Config.SyncInterval)
		}
		fmt.Fprintf(s.out, "; cache: %s (Memory Pressure: %s)", formatBytes(c.CacheSize), formatBytes(c.PressureCacheBytes))
		if slices.Contains(c.Engines, "memory") {
			fmt.Fprint(s.out, "; the memory engine has neither durability nor a cache, so neither applies to it")
		}
		fmt.Fprintln(s.out)
	}
	fmt.Fprintf(s.out, "level %s\n", s.lvl)
	fmt.Fprintf(s.out, "timed part at most %v (%d tests x %v x %d engine(s)), plus untimed loading\n",
		s.lvl.MaxMeasuring(len(c.Engines)), len(tests), s.lvl.Duration, len(c.Engines))
	fmt.Fprintf(s.out, "targets: %s\n", s.targets)
}

// String states the targets in words.
func (t Targets) String() string {
	return fmt.Sprintf("at least %.0f ops/s sustained over each test, p99 under %s, no errors",
		t.MinOpsPerSec, formatUs(t.MaxP99Us))
}

// printResult prints one test's result on one engine.
func (s *session) printResult(engine string, r *Result) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL: " + strings.Join(r.Failures, "; ")
	}
	fmt.Fprintf(s.out, "  %-7s %d ops in %.2fs = %.0f ops/s, %d errors, cache hit rate %s  %s\n",
		engine, r.Ops, r.ElapsedS, r.OpsPerSec, r.Errors, formatRate(r.CacheHitRate), verdict)
	fmt.Fprintf(s.out, "          latency us: p50 %d  p95 %d  p99 %d  p999 %d  max %d  mean %.1f\n",
		r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.P999, r.Latency.Max, r.Latency.Mean)
	if r.Conflicts > 0 {
		fmt.Fprintf(s.out, "          %d conflicts retried\n", r.Conflicts)
	}
	if r.Note != "" {
		fmt.Fprintf(s.out, "          note: %s\n", r.Note)
	}
	if r.FirstError != "" {
		fmt.Fprintf(s.out, "          first error: %s\n", r.FirstError)
	}
}

// formatRate prints a cache hit rate, or n/a.
func formatRate(rate *float64) string {
	if rate == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", *rate*100)
}

// printSummary prints the table of every result, the side-by-side ratios
// when two engines ran, and the verdict.
func (s *session) printSummary(rep *Report) {
	engines := rep.Config.Engines
	fmt.Fprintf(s.out, "\nSummary: level %s", rep.Config.Level)
	if rep.Config.Sync != "" {
		fmt.Fprintf(s.out, ", sync %s", rep.Config.Sync)
	}
	fmt.Fprintln(s.out, "; latency in microseconds")
	rows := [][]string{{"TEST", "ENGINE", "OPS", "OPS/S", "P50", "P95", "P99", "P999", "MAX", "ERRORS", "CACHE HIT", "VERDICT"}}
	for _, t := range rep.Tests {
		for _, e := range engines {
			r := t.Engines[e]
			verdict := "PASS"
			if !r.Pass {
				verdict = "FAIL"
			}
			l := r.Latency
			rows = append(rows, []string{t.Name, e, itoa(r.Ops), fmt.Sprintf("%.0f", r.OpsPerSec),
				itoa(l.P50), itoa(l.P95), itoa(l.P99), itoa(l.P999), itoa(l.Max), itoa(r.Errors),
				formatRate(r.CacheHitRate), verdict})
		}
	}
	printTable(s.out, "llrrrrrrrrrl", rows)
	if len(engines) == 2 {
		a, b := engines[0], engines[1]
		fmt.Fprintf(s.out, "\n%s beside %s, measured in this run (ratio = %s/%s: ops/s above 1 means %s is faster, p99 above 1 means %s is slower)\n",
			a, b, a, b, a, a)
		A, B := strings.ToUpper(a), strings.ToUpper(b)
		rows := [][]string{{"TEST", A + " OPS/S", B + " OPS/S", "RATIO", A + " P99", B + " P99", "RATIO"}}
		for _, t := range rep.Tests {
			ra, rb := t.Engines[a], t.Engines[b]
			rows = append(rows, []string{t.Name, fmt.Sprintf("%.0f", ra.OpsPerSec), fmt.Sprintf("%.0f", rb.OpsPerSec),
				ratio(ra.OpsPerSec, rb.OpsPerSec), itoa(ra.Latency.P99), itoa(rb.Latency.P99),
				ratio(float64(ra.Latency.P99), float64(rb.Latency.P99))})
		}
		printTable(s.out, "lrrrrrr", rows)
	}
	fmt.Fprintf(s.out, "\nVerdict against the original targets (%s):\n", s.targets)
	passed, total := 0, 0
	for _, t := range rep.Tests {
		for _, e := range engines {
			r := t.Engines[e]
			total++
			if r.Pass {
				passed++
				continue
			}
			fmt.Fprintf(s.out, "  FAIL %s [%s]: %s\n", t.Name, e, strings.Join(r.Failures, "; "))
		}
	}
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(s.out, "Overall: %s (%d of %d passed)\n", verdict, passed, total)
}

// printTable prints rows in columns two spaces apart; align holds one
// letter per column, l (left) or r (right).
func printTable(w io.Writer, align string, rows [][]string) {
	widths := make([]int, len(align))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(cell))
			if align[i] == 'r' {
				b.WriteString(pad + cell)
			} else if i < len(row)-1 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(cell)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// ratio prints a/b with two decimals, or n/a when b is zero.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
