package cputime

import (
	"testing"
	"time"
)

// TestProcessCountsWork checks that spinning on the CPU moves the figure
// by about what the spin took, and never backwards.
func TestProcessCountsWork(t *testing.T) {
	before, err := Process()
	if err != nil {
		t.Fatal(err)
	}
	spin := 50 * time.Millisecond
	x := 0
	for start := time.Now(); time.Since(start) < spin; {
		x++
	}
	after, err := Process()
	if err != nil {
		t.Fatal(err)
	}
	// The spin's thread may be descheduled on a busy machine, so only a
	// part of its wall time is certain to be CPU time.
	if got := after - before; got < spin/10 {
		t.Fatalf("spinning %v moved the process's CPU time by %v (x=%d)", spin, got, x)
	}
}
