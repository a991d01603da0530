package telemetry

import (
	"sync/atomic"
	"time"
)

// Protocol records the operations and connections of one protocol. It is
// safe for concurrent use. Get one from Recorder.Protocol.
type Protocol struct {
	name     string
	now      func() time.Time
	open     atomic.Int64
	opened   atomic.Uint64
	families [NumFamilies]familyRecord
}

// familyRecord is one family's counter and latency window.
type familyRecord struct {
	ops    atomic.Uint64
	window *latencyWindow
}

// ObserveSince records one operation of family f that started at start
// and has just finished, and returns how long it took. Call it once per
// command (a Redis pipeline of ten GETs is ten reads; an HTTP batch is one
// write), after the answer is ready. It reads the clock once, for both the
// duration and the second it falls in, so a caller that also wants the
// duration for its own figures should use the one returned rather than
// read the clock again. An out-of-range f is not recorded.
func (p *Protocol) ObserveSince(f Family, start time.Time) time.Duration {
	now := p.now()
	d := now.Sub(start)
	if int(f) >= NumFamilies {
		return d
	}
	rec := &p.families[f]
	rec.ops.Add(1)
	rec.window.record(now, d)
	return d
}

// LatencyBatch holds the operations of one batch of requests (a Redis
// pipeline) until ObserveBatch records them together: one lock of each
// family's window per batch rather than one per operation, which two event
// loops recording the GETs of their pipelines would otherwise take turns
// on. It is used by one goroutine at a time; the zero value is empty.
type LatencyBatch struct {
	took [NumFamilies][]time.Duration
}

// Add holds one operation of family f that took d (an out-of-range f is
// not recorded).
func (b *LatencyBatch) Add(f Family, d time.Duration) {
	if int(f) < NumFamilies {
		b.took[f] = append(b.took[f], d)
	}
}

// ObserveBatch records the operations b holds, all ended by now, as
// ObserveSince records one, and empties b.
func (p *Protocol) ObserveBatch(b *LatencyBatch, now time.Time) {
	for f := range b.took {
		ds := b.took[f]
		if len(ds) == 0 {
			continue
		}
		rec := &p.families[f]
		rec.ops.Add(uint64(len(ds)))
		rec.window.recordAll(now, ds)
		if cap(ds) > 1024 {
			ds = nil
		}
		b.took[f] = ds[:0]
	}
}

// ConnOpened records a new connection. Pair every call with one
// ConnClosed.
func (p *Protocol) ConnOpened() {
	p.open.Add(1)
	p.opened.Add(1)
}

// ConnClosed records that a connection ConnOpened counted has closed.
func (p *Protocol) ConnClosed() { p.open.Add(-1) }

func (p *Protocol) snapshot(now time.Time) ProtocolSnapshot {
	s := ProtocolSnapshot{Name: p.name, Connections: p.open.Load(), ConnectionsTotal: p.opened.Load()}
	for f := range p.families {
		rec := &p.families[f]
		fs := rec.window.lastSecond(now)
		fs.Ops = rec.ops.Load()
		s.Families[f] = fs
	}
	return s
}
