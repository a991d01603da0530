// Package cputime reads the CPU time the process has used, for benchmarks
// that state CPU per operation beside their rates.
package cputime

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// Process is the user and system CPU time the process has used so far,
// over all its threads.
func Process() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ForBenchmark is Process for a benchmark or test, which it fails if the
// figure cannot be read.
func ForBenchmark(tb testing.TB) time.Duration {
	tb.Helper()
	cpu, err := Process()
	if err != nil {
		tb.Fatal(err)
	}
	return cpu
}
