package soak

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"
)

// samples builds a run: warm phases of warmup, then steady ones, with
// the RSS of each given in MiB.
func samples(phases []string, rssMiB []int64) []Sample {
	out := make([]Sample, len(phases))
	for i := range phases {
		out[i] = Sample{ElapsedS: float64(10 * (i + 1)), Phase: phases[i], RSSBytes: rssMiB[i] << 20}
	}
	return out
}

func check(t *testing.T, r *Result, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return Check{}
}

func TestRSSRule(t *testing.T) {
	cfg := Config{RSSFactor: 1.10, RSSSlack: 32 << 20, RSSSpike: 256 << 20, AttackAt: 55 * time.Second, AttackFor: 20 * time.Second}
	phases := []string{"warmup", "warmup", "steady", "steady", "steady", "attack", "attack",
		"steady", "steady", "steady", "steady", "steady", "steady"}
	// Reference: the median of the steady samples before the attack, 305
	// MiB. Flat limit 305 × 1.1 + 32 = 367.5 MiB; peak limit 305 × 1.1 +
	// 256 = 591.5 MiB.
	cases := []struct {
		name               string
		rss                []int64
		flat, peaks, atkOK bool
	}{
		{"flat", []int64{100, 250, 300, 310, 305, 320, 310, 300, 310, 305, 300, 310, 305}, true, true, true},
		{"growing", []int64{100, 250, 300, 310, 305, 320, 310, 330, 350, 370, 390, 410, 430}, false, true, true},
		{"one compaction spike", []int64{100, 250, 300, 310, 305, 320, 310, 300, 310, 560, 300, 310, 305}, true, true, true},
		{"a spike too high", []int64{100, 250, 300, 310, 305, 320, 310, 300, 310, 700, 300, 310, 305}, true, false, true},
		{"attack blows up", []int64{100, 250, 300, 310, 305, 900, 310, 300, 310, 305, 300, 310, 305}, true, false, false},
		// The warm-up is not the reference: memory still rises as the
		// cache fills and compaction starts after it.
		{"warm-up lower", []int64{50, 60, 300, 310, 305, 320, 310, 300, 310, 305, 300, 310, 305}, true, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Samples: samples(phases, tc.rss), Total: 1}
			r.judge(cfg)
			if c := check(t, r, "RSS flat after the warm-up"); c.Pass != tc.flat {
				t.Fatalf("flat: %+v", c)
			}
			if c := check(t, r, "RSS peaks bounded"); c.Pass != tc.peaks {
				t.Fatalf("peaks: %+v", c)
			}
			if c := check(t, r, "RSS bounded during the attack"); c.Pass != tc.atkOK {
				t.Fatalf("attack: %+v", c)
			}
			if r.RefRSS != 305<<20 {
				t.Fatalf("reference %d MiB, want 305", r.RefRSS>>20)
			}
		})
	}
	// Without RSS figures the rule fails rather than passing blind.
	none := make([]int64, len(phases))
	for i := range none {
		none[i] = -1
	}
	r := &Result{Samples: samples(phases, none)}
	r.judge(cfg)
	if c := check(t, r, "RSS flat after the warm-up"); c.Pass || !strings.Contains(c.Detail, "too few RSS figures") {
		t.Fatalf("no figures: %+v", c)
	}
	if r.Pass {
		t.Fatal("a run without RSS figures passed")
	}
}

func TestVerdictFailures(t *testing.T) {
	cfg := Config{RSSFactor: 1.10, RSSSlack: 32 << 20, RSSSpike: 256 << 20, AttackAt: 25 * time.Second, AttackFor: 10 * time.Second,
		MaxProbeLatency: time.Second, Attack: AttackConfig{Cutoff: 10 * time.Second}}
	base := func() *Result {
		a := newAttack(cfg.Attack, mustURL(t), "tok", "ns/")
		for _, s := range a.kinds {
			s.Attempts, s.Cut = 3, 3
		}
		return &Result{
			Samples: samples([]string{"warmup", "steady", "attack", "steady", "steady"}, []int64{100, 200, 200, 200, 200}),
			Total:   100, Attacks: a.results(),
			Probe:     probeStats{Count: 10, AttackCount: 5, AttackMaxUs: 1000},
			ServerLog: &logReport{},
		}
	}
	r := base()
	r.judge(cfg)
	if !r.Pass {
		t.Fatalf("a clean run failed: %+v", r.Checks)
	}
	for name, spoil := range map[string]func(r *Result){
		"no failed requests":                  func(r *Result) { r.Errors = 1 },
		"abusive clients: slow-headers":       func(r *Result) { r.Attacks[0].NotCut = 1 },
		"abusive clients: pregrow":            func(r *Result) { r.Attacks[3].Unexpected = 1 },
		"abusive clients: oversized":          func(r *Result) { r.Attacks[4].Attempts = 0 },
		"new connections served":              func(r *Result) { r.Probe.AttackMaxUs = 2_000_000 },
		"no errors in the server log":         func(r *Result) { r.ServerLog.ErrorCount = 1 },
		"token never in the server log":       func(r *Result) { r.ServerLog.TokenSeen = true },
		"server stopped cleanly":              func(r *Result) { r.ServerStops = "exit status 1" },
		"abusive clients: slow-body-no-token": func(r *Result) { r.Attacks[2].DialErrors = 1 },
	} {
		r := base()
		spoil(r)
		r.judge(cfg)
		if r.Pass || check(t, r, name).Pass {
			t.Errorf("%s: spoiled, yet passed", name)
		}
	}
}

func TestAttackRecord(t *testing.T) {
	s := newAttackStats("slow-body")
	s.record(3*time.Second, true, "408", []string{"408"}, 10*time.Second)
	s.record(12*time.Second, true, "408", []string{"408"}, 10*time.Second)   // too late
	s.record(40*time.Second, false, "none", []string{"408"}, 10*time.Second) // never closed, no answer
	if s.Cut != 1 || s.NotCut != 2 || s.Unexpected != 1 || s.LongestMs != 40000 || s.Statuses["408"] != 2 {
		t.Fatalf("%+v", s)
	}
}

func TestKeySpaceFreezes(t *testing.T) {
	ks := &keySpace{max: 1000}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		ks.writeKey(rng)
	}
	if ks.size() != 300 || ks.created.Load() != 300 {
		t.Fatalf("size %d after 300 new keys", ks.size())
	}
	if n := ks.freeze(); n != 300 {
		t.Fatalf("frozen at %d", n)
	}
	for i := 0; i < 1000; i++ {
		if k := ks.writeKey(rng); k >= keyName(300) {
			t.Fatalf("key %s written after the freeze at 300", k)
		}
	}
	if ks.created.Load() != 300 {
		t.Fatal("keys created after the freeze")
	}
	// Growth stops at max during the warm-up too.
	ks = &keySpace{max: 10}
	for i := 0; i < 100; i++ {
		if k := ks.writeKey(rng); k >= keyName(10) {
			t.Fatalf("key %s beyond max", k)
		}
	}
}

func mustURL(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestMemoryOfTakesMedians checks the per-phase memory figures: medians
// of each field, and -1 for a field any sample lacks.
func TestMemoryOfTakesMedians(t *testing.T) {
	samples := []Sample{
		{RSSBytes: 300, NativeBytes: 250, GoHeldBytes: 40, GoHeapBytes: 10, CacheBytes: 64, Threads: 70, Segments: 3},
		{RSSBytes: 100, NativeBytes: 50, GoHeldBytes: 45, GoHeapBytes: 12, CacheBytes: 64, Threads: 72, Segments: 5},
		{RSSBytes: 200, NativeBytes: 150, GoHeldBytes: -1, GoHeapBytes: 11, CacheBytes: 64, Threads: 71, Segments: 4},
	}
	got := memoryOf(samples)
	want := Memory{RSS: 200, Native: 150, GoHeld: -1, GoHeap: 11, Cache: 64, Threads: 71, Segments: 4}
	if got != want {
		t.Fatalf("memoryOf = %+v, want %+v", got, want)
	}
	if m := memoryOf(nil); m.RSS != -1 || m.Native != -1 {
		t.Fatalf("memoryOf(nil) = %+v, want -1 figures", m)
	}
}
