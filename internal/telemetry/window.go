package telemetry

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histogram bounds, in microseconds: 1 µs to 10 minutes at two
// significant digits (1% error), about 10 KiB a histogram.
const (
	minLatencyMicros = 1
	maxLatencyMicros = int64(10 * time.Minute / time.Microsecond)
	latencyDigits    = 2
)

// latencyWindow keeps the latencies of the current second and the one
// before it. A snapshot reads the previous whole second, which is complete
// and no longer written, so readers never see a half-filled second.
type latencyWindow struct {
	mu sync.Mutex
	// cur holds the latencies of second curSec (Unix seconds); prev those
	// of curSec-1 when prevValid.
	cur, prev *hdrhistogram.Histogram
	curSec    int64
	prevValid bool
}

func newLatencyWindow() *latencyWindow {
	return &latencyWindow{
		cur:  hdrhistogram.New(minLatencyMicros, maxLatencyMicros, latencyDigits),
		prev: hdrhistogram.New(minLatencyMicros, maxLatencyMicros, latencyDigits),
	}
}

// advance moves the window so that cur is second sec. Called with mu held.
func (w *latencyWindow) advance(sec int64) {
	switch {
	case sec == w.curSec:
	case sec == w.curSec+1:
		w.cur, w.prev = w.prev, w.cur
		w.cur.Reset()
		w.prevValid = true
		w.curSec = sec
	case sec > w.curSec:
		w.cur.Reset()
		w.prevValid = false
		w.curSec = sec
	}
	// sec < curSec: the wall clock stepped back; keep filling cur rather
	// than throw away the second being measured.
}

func (w *latencyWindow) record(now time.Time, d time.Duration) {
	w.mu.Lock()
	w.advance(now.Unix())
	w.put(d)
	w.mu.Unlock()
}

// recordAll is record of every latency in ds, all ended by now, under one
// lock.
func (w *latencyWindow) recordAll(now time.Time, ds []time.Duration) {
	w.mu.Lock()
	w.advance(now.Unix())
	for _, d := range ds {
		w.put(d)
	}
	w.mu.Unlock()
}

// put adds one latency to the current second. Called with mu held.
func (w *latencyWindow) put(d time.Duration) {
	us := max(d.Microseconds(), minLatencyMicros)
	us = min(us, maxLatencyMicros)
	// RecordValue fails only outside the bounds, which us is clamped to.
	_ = w.cur.RecordValue(us)
}

// lastSecond returns the count and percentiles of the second before now.
func (w *latencyWindow) lastSecond(now time.Time) FamilySnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now.Unix())
	if !w.prevValid || w.prev.TotalCount() == 0 {
		return FamilySnapshot{}
	}
	return FamilySnapshot{
		WindowOps: uint64(w.prev.TotalCount()),
		P50:       time.Duration(w.prev.ValueAtQuantile(50)) * time.Microsecond,
		P99:       time.Duration(w.prev.ValueAtQuantile(99)) * time.Microsecond,
	}
}
