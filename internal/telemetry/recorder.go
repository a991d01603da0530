// Package telemetry counts what the server's protocols do, in one shape for
// every protocol: operations and their latency per command family (read,
// write, scan, txn), and open connections. HTTP records into it today; the
// Redis protocol records into the same Recorder under its own name, so the
// dashboard shows both side by side.
//
// Recording is cheap enough for every request: counters are atomics, and a
// latency goes into a per-second HDR histogram under a lock held by that
// family of that protocol only.
package telemetry

import (
	"sync"
	"time"
)

// Recorder holds the figures of every protocol. It is safe for concurrent
// use; the zero value is not usable, call New.
type Recorder struct {
	start time.Time
	now   func() time.Time

	mu        sync.Mutex
	protocols []*Protocol // in the order they were first asked for
}

// New returns an empty Recorder whose uptime starts now.
func New() *Recorder { return newWithClock(time.Now) }

func newWithClock(now func() time.Time) *Recorder {
	return &Recorder{start: now(), now: now}
}

// Protocol returns the recorder of the protocol called name ("http",
// "resp"), creating it on first use. Later calls with the same name return
// the same *Protocol, so a server asks once and keeps it.
func (r *Recorder) Protocol(name string) *Protocol {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.protocols {
		if p.name == name {
			return p
		}
	}
	p := &Protocol{name: name, now: r.now}
	for f := range p.families {
		p.families[f].window = newLatencyWindow()
	}
	r.protocols = append(r.protocols, p)
	return p
}

// Snapshot reads every protocol's figures now. Latency percentiles cover
// the operations that finished in the last whole second before now, so
// successive snapshots a second apart chart the latency second by second.
func (r *Recorder) Snapshot() Snapshot {
	now := r.now()
	r.mu.Lock()
	protocols := append([]*Protocol(nil), r.protocols...)
	r.mu.Unlock()
	snap := Snapshot{
		Time:      now,
		Uptime:    now.Sub(r.start),
		Protocols: make([]ProtocolSnapshot, 0, len(protocols)),
	}
	for _, p := range protocols {
		snap.Protocols = append(snap.Protocols, p.snapshot(now))
	}
	return snap
}

// Snapshot is every protocol's figures at one moment.
type Snapshot struct {
	// Time is when the snapshot was taken.
	Time time.Time
	// Uptime is how long the Recorder has existed.
	Uptime time.Duration
	// Protocols are in the order they were first recorded into.
	Protocols []ProtocolSnapshot
}

// ProtocolSnapshot is one protocol's figures at one moment.
type ProtocolSnapshot struct {
	// Name is the protocol's name as given to Recorder.Protocol.
	Name string
	// Connections is the number of connections open now.
	Connections int64
	// ConnectionsTotal counts every connection ever opened.
	ConnectionsTotal uint64
	// Families has one entry per Family, indexed by it.
	Families [NumFamilies]FamilySnapshot
}

// FamilySnapshot is one command family's figures at one moment.
type FamilySnapshot struct {
	// Ops counts the operations finished since the start.
	Ops uint64
	// WindowOps counts the operations finished in the last whole second;
	// the percentiles below are over these.
	WindowOps uint64
	// P50 and P99 are latency percentiles over the last whole second;
	// zero when WindowOps is zero.
	P50, P99 time.Duration
}
