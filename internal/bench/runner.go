package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencyMaxUs is the longest latency a histogram tells apart (one
// minute); longer operations are recorded as one minute.
const latencyMaxUs = 60_000_000

// progressEvery is the period of the live progress line: at most four
// updates a second.
const progressEvery = 250 * time.Millisecond

// worker is one goroutine of a test, with its own random source and
// histogram so workers share nothing on the hot path but the op counter.
type worker struct {
	rng       *rand.Rand
	hist      *hdrhistogram.Histogram
	done      atomic.Int64 // successful operations, read by the progress line
	errors    int64
	conflicts int64
	firstErr  error
}

// opFunc is one operation of a test; i numbers the test's operations from 0
// in the order workers claim them.
type opFunc func(ctx context.Context, w *worker, i int64) error

// measurement is what one run of a test observed.
type measurement struct {
	ops, errors, conflicts int64
	elapsed                time.Duration
	hist                   *hdrhistogram.Histogram
	firstErr               error
}

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, latencyMaxUs, 3) }

// measure runs op from lvl.Workers goroutines until lvl.MaxOps operations
// have been claimed, lvl.Duration has passed or ctx is cancelled. An
// operation in flight at the deadline finishes and counts. Latency is
// recorded in microseconds, rounded up, for successful operations only.
// When progress is not nil it receives a live line about title.
func measure(ctx context.Context, lvl Level, title string, progress io.Writer, op opFunc) measurement {
	var claimed atomic.Int64
	workers := make([]*worker, lvl.Workers)
	for i := range workers {
		workers[i] = &worker{rng: rand.New(rand.NewPCG(rand.Uint64(), uint64(i))), hist: newHistogram()}
	}
	start := time.Now()
	deadline := start.Add(lvl.Duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := claimed.Add(1) - 1
				if i >= lvl.MaxOps {
					return
				}
				t0 := time.Now()
				if t0.After(deadline) {
					return
				}
				err := op(ctx, w, i)
				us := int64((time.Since(t0) + time.Microsecond - 1) / time.Microsecond)
				if err != nil {
					w.errors++
					if w.firstErr == nil {
						w.firstErr = err
					}
					continue
				}
				_ = w.hist.RecordValue(min(us, latencyMaxUs)) // in range by construction
				w.done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if progress != nil {
		showProgress(progress, title, start, workers, finished)
	}
	<-finished
	m := measurement{elapsed: time.Since(start), hist: newHistogram()}
	for _, w := range workers {
		m.ops += w.done.Load()
		m.errors += w.errors
		m.conflicts += w.conflicts
		if m.firstErr == nil {
			m.firstErr = w.firstErr
		}
		m.hist.Merge(w.hist)
	}
	return m
}

// showProgress rewrites one terminal line with the test's progress until
// finished, then clears it.
func showProgress(out io.Writer, title string, start time.Time, workers []*worker, finished <-chan struct{}) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			fmt.Fprint(out, "\r\x1b[K")
			return
		case <-tick.C:
			var ops int64
			for _, w := range workers {
				ops += w.done.Load()
			}
			elapsed := time.Since(start)
			fmt.Fprintf(out, "\r%s  %5.1fs  %d ops  %.0f ops/s\x1b[K",
				title, elapsed.Seconds(), ops, float64(ops)/elapsed.Seconds())
		}
	}
}
