package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseLevel(t *testing.T) {
	for _, name := range []string{"light", "medium", "heavy", "extreme"} {
		for _, spelled := range []string{name, strings.ToUpper(name), " " + name + " "} {
			l, err := ParseLevel(spelled)
			if err != nil || l.Name != name {
				t.Fatalf("ParseLevel(%q) = %v, %v", spelled, l.Name, err)
			}
		}
	}
	for _, bad := range []string{"", "test", "insane", "lightest"} {
		_, err := ParseLevel(bad)
		if err == nil || !strings.Contains(err.Error(), "light, medium, heavy, extreme") {
			t.Fatalf("ParseLevel(%q) error %v does not list the levels", bad, err)
		}
	}
}

// TestLevelParameters pins the promises of each level: it grows on every
// axis, stays within its time budget with both engines, and Memory
// Pressure's working set is larger than its cache.
func TestLevelParameters(t *testing.T) {
	// budget is the promised wall time of a two-engine run; the timed part
	// must leave room for the untimed loading. extreme promises at least.
	budget := map[string]struct{ max, min time.Duration }{
		"light":   {max: 25 * time.Second},
		"medium":  {max: 100 * time.Second},
		"heavy":   {max: 270 * time.Second},
		"extreme": {min: 10 * time.Minute},
	}
	if got := LevelNames(); strings.Join(got, ",") != "light,medium,heavy,extreme" {
		t.Fatalf("levels %v", got)
	}
	var prev Level
	for i, l := range append([]Level{testLevel}, levels...) {
		if err := checkLevel(l); err != nil {
			t.Fatal(err)
		}
		if l.pressureBytes() <= l.pressureCache() {
			t.Errorf("%s: the Memory Pressure working set (%d B) fits its cache (%d B)", l.Name, l.pressureBytes(), l.pressureCache())
		}
		if l.Counters > 2*l.Workers {
			t.Errorf("%s: %d counters for %d workers make conflicts rare", l.Name, l.Counters, l.Workers)
		}
		if i > 0 && (l.Workers < prev.Workers || l.Keys < prev.Keys || l.MaxOps < prev.MaxOps ||
			l.Duration < prev.Duration || l.PressureKeys < prev.PressureKeys) {
			t.Errorf("%s is lighter than %s on some axis: %+v vs %+v", l.Name, prev.Name, l, prev)
		}
		prev = l
		if l == testLevel {
			if l.MaxMeasuring(2) > 5*time.Second || l.MaxOps > 1000 {
				t.Errorf("the test level is not tiny: %+v", l)
			}
			continue
		}
		b := budget[l.Name]
		if got := l.MaxMeasuring(2); b.max > 0 && got > b.max {
			t.Errorf("%s: the timed part can take %v with both engines, over its budget of %v", l.Name, got, b.max)
		}
		if got := l.MaxMeasuring(1); got < b.min {
			t.Errorf("%s: the timed part takes at most %v with one engine, under the promised %v", l.Name, got, b.min)
		}
	}
	if !strings.Contains(levels[0].String(), "8 workers, 10000 keys of 256 B values") {
		t.Errorf("light describes itself as %q", levels[0])
	}
}
