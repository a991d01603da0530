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
