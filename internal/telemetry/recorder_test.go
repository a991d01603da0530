package telemetry

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the Recorder.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestLatencyIsTheLastWholeSecond checks that a snapshot reports the
// previous second's operations only: not the second being filled, and
// nothing once a second has passed without operations.
func TestLatencyIsTheLastWholeSecond(t *testing.T) {
	base := time.Unix(1_000_000, 0)
	clock := &fakeClock{t: base}
	r := newWithClock(clock.now)
	p := r.Protocol("http")

	for i := 1; i <= 100; i++ {
		p.ObserveSince(Read, clock.now().Add(-time.Duration(i)*time.Millisecond))
	}
	p.ObserveSince(Write, clock.now().Add(-5*time.Millisecond))
	if got := r.Snapshot().Protocols[0].Families[Read]; got.WindowOps != 0 || got.Ops != 100 {
		t.Fatalf("during the second itself: %+v, want 100 ops and an empty window", got)
	}

	clock.set(base.Add(1500 * time.Millisecond))
	if d := p.ObserveSince(Read, clock.now().Add(-time.Hour)); d != time.Hour { // the new second: must not show yet
		t.Fatalf("ObserveSince returned %v, want 1h", d)
	}
	snap := r.Snapshot()
	read := snap.Protocols[0].Families[Read]
	if read.Ops != 101 || read.WindowOps != 100 {
		t.Fatalf("read after one second: %+v, want 101 ops, 100 in the window", read)
	}
	// Two significant digits: within 1% of the exact percentiles.
	if !near(read.P50, 50*time.Millisecond) || !near(read.P99, 99*time.Millisecond) {
		t.Fatalf("p50 %v p99 %v, want about 50ms and 99ms", read.P50, read.P99)
	}
	if w := snap.Protocols[0].Families[Write]; w.WindowOps != 1 || !near(w.P99, 5*time.Millisecond) {
		t.Fatalf("write: %+v", w)
	}
	if s := snap.Protocols[0].Families[Scan]; s != (FamilySnapshot{}) {
		t.Fatalf("scan saw no operation but reports %+v", s)
	}
	if snap.Uptime != 1500*time.Millisecond {
		t.Fatalf("uptime %v", snap.Uptime)
	}

	// The hour-long read is clamped to the histogram's top, and a quiet
	// second after it empties the window.
	clock.set(base.Add(2 * time.Second))
	if got := r.Snapshot().Protocols[0].Families[Read]; got.WindowOps != 1 || got.P99 < 9*time.Minute {
		t.Fatalf("clamped read: %+v", got)
	}
	clock.set(base.Add(5 * time.Second))
	if got := r.Snapshot().Protocols[0].Families[Read]; got.WindowOps != 0 || got.P99 != 0 || got.Ops != 101 {
		t.Fatalf("after quiet seconds: %+v", got)
	}
}

func near(got, want time.Duration) bool {
	diff := got - want
	return diff >= -want/100 && diff <= want/100
}

// TestProtocolsAndConnections checks that a name maps to one Protocol,
// protocols keep their first-use order, and connections are counted.
func TestProtocolsAndConnections(t *testing.T) {
	r := New()
	http := r.Protocol("http")
	resp := r.Protocol("resp")
	if r.Protocol("http") != http {
		t.Fatal("a second Protocol(\"http\") returned another recorder")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				resp.ConnOpened()
				resp.ObserveSince(Txn, time.Now())
				resp.ConnClosed()
			}
		}()
	}
	wg.Wait()
	http.ConnOpened()
	http.ConnOpened()
	http.ConnClosed()
	http.ObserveSince(Family(NumFamilies), time.Now()) // out of range: ignored

	snap := r.Snapshot()
	if len(snap.Protocols) != 2 || snap.Protocols[0].Name != "http" || snap.Protocols[1].Name != "resp" {
		t.Fatalf("protocols %+v", snap.Protocols)
	}
	h, s := snap.Protocols[0], snap.Protocols[1]
	if h.Connections != 1 || h.ConnectionsTotal != 2 {
		t.Fatalf("http connections %d open, %d total; want 1, 2", h.Connections, h.ConnectionsTotal)
	}
	if s.Connections != 0 || s.ConnectionsTotal != 800 || s.Families[Txn].Ops != 800 {
		t.Fatalf("resp: %+v", s)
	}
	for f := range NumFamilies {
		if h.Families[f].Ops != 0 {
			t.Fatalf("http %v counted an out-of-range family", Family(f))
		}
	}
	if Family(2).String() != "scan" || Family(9).String() != "unknown" {
		t.Fatal("family names")
	}
}

// TestObserveBatch checks that a batch records what as many ObserveSince
// calls would: the counts, the percentiles, the second they fall in, and
// that the batch is empty afterwards.
func TestObserveBatch(t *testing.T) {
	base := time.Unix(2_000_000, 0)
	clock := &fakeClock{t: base}
	r := newWithClock(clock.now)
	p := r.Protocol("redis")
	var b LatencyBatch
	for i := 1; i <= 100; i++ {
		b.Add(Read, time.Duration(i)*time.Millisecond)
	}
	b.Add(Write, 5*time.Millisecond)
	b.Add(Family(NumFamilies), time.Second) // out of range: dropped
	p.ObserveBatch(&b, clock.now())
	for f := range b.took {
		if len(b.took[f]) != 0 {
			t.Fatalf("family %d still holds %d figures", f, len(b.took[f]))
		}
	}
	p.ObserveBatch(&b, clock.now()) // empty: records nothing
	clock.set(base.Add(time.Second))
	snap := r.Snapshot().Protocols[0]
	read, write := snap.Families[Read], snap.Families[Write]
	if read.Ops != 100 || read.WindowOps != 100 || !near(read.P50, 50*time.Millisecond) || !near(read.P99, 99*time.Millisecond) {
		t.Fatalf("read: %+v, want 100 ops with p50 50ms and p99 99ms", read)
	}
	if write.Ops != 1 || write.WindowOps != 1 || !near(write.P99, 5*time.Millisecond) {
		t.Fatalf("write: %+v", write)
	}
}
