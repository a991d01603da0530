package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A retry's pause doubles its bound with each attempt up to the cap, and
// the tries of one increment together may wait far longer than a synced
// commit on a loaded machine: the longest of many draws per attempt comes
// near the bound and never reaches it.
func TestBackoffDelayDoublesUpToItsCap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var total time.Duration
	for attempt := 1; attempt <= maxTxnAttempts; attempt++ {
		bound := min(backoffBase<<(attempt-1), backoffMax)
		var longest, sum time.Duration
		const draws = 2000
		for range draws {
			d := backoffDelay(attempt, rng)
			if d < 0 || d >= bound {
				t.Fatalf("attempt %d: pause %v outside [0, %v)", attempt, d, bound)
			}
			longest = max(longest, d)
			sum += d
		}
		if longest < bound*9/10 {
			t.Fatalf("attempt %d: longest of %d pauses %v, want near %v", attempt, draws, longest, bound)
		}
		total += sum / draws
	}
	// The mean wait over all tries: about half the sum of the bounds.
	if total < 50*time.Millisecond {
		t.Fatalf("the %d tries of one increment wait %v on average, want 50 ms or more", maxTxnAttempts, total)
	}
	if d := backoffDelay(1000, rng); d >= backoffMax {
		t.Fatalf("attempt 1000: pause %v, want under the cap %v", d, backoffMax)
	}
}
