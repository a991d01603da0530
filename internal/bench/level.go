package bench

import (
	"fmt"
	"strings"
	"time"
)

// Level is a stress level: how many workers, how much data, and how long
// each test may run. Every test stops at MaxOps operations or after
// Duration, whichever comes first.
type Level struct {
	// Name is light, medium, heavy or extreme.
	Name string
	// Workers is the number of goroutines (or HTTP connections) issuing operations.
	Workers int
	// Keys is the size of the main key space the read and write tests use.
	Keys int
	// ValueSize is the length of every value written, in bytes.
	ValueSize int
	// MaxOps bounds the operations of one test.
	MaxOps int64
	// Duration bounds the time of one test.
	Duration time.Duration
	// PressureKeys is the working set of Memory Pressure, in keys of
	// ValueSize bytes; the engine's cache gets CacheFraction of it.
	PressureKeys int
	// CacheFraction is the share of the Memory Pressure working set the
	// engine's cache may hold, e.g. 0.125.
	CacheFraction float64
	// ScanLimit is the most keys one Prefix Scan returns.
	ScanLimit int
	// Counters is how many counters the Transactions test increments; fewer
	// counters than workers means more conflicts.
	Counters int
}

// levels are the public stress levels, lightest first. The durations keep
// a whole run, both engines included, within the time each level promises:
// 8 tests × Duration × 2 engines plus the untimed loading.
var levels = []Level{
	{Name: "light", Workers: 8, Keys: 10_000, ValueSize: 256, MaxOps: 250_000, Duration: 1250 * time.Millisecond,
		PressureKeys: 20_000, CacheFraction: 0.125, ScanLimit: 50, Counters: 16},
	{Name: "medium", Workers: 32, Keys: 100_000, ValueSize: 1024, MaxOps: 2_000_000, Duration: 6 * time.Second,
		PressureKeys: 100_000, CacheFraction: 0.125, ScanLimit: 100, Counters: 64},
	{Name: "heavy", Workers: 64, Keys: 500_000, ValueSize: 1024, MaxOps: 10_000_000, Duration: 15 * time.Second,
		PressureKeys: 500_000, CacheFraction: 0.125, ScanLimit: 100, Counters: 128},
	{Name: "extreme", Workers: 128, Keys: 1_000_000, ValueSize: 1024, MaxOps: 100_000_000, Duration: 90 * time.Second,
		PressureKeys: 1_000_000, CacheFraction: 0.125, ScanLimit: 100, Counters: 256},
}

// testLevel is a tiny level for this package's tests: a few hundred
// operations per test, so a whole suite takes well under a second. Its
// values are over 128 bytes (the default inline threshold): the Rust engine
// keeps shorter ones inline in its index, where no cache lookup happens.
var testLevel = Level{Name: "test", Workers: 4, Keys: 200, ValueSize: 200, MaxOps: 300, Duration: 250 * time.Millisecond,
	PressureKeys: 400, CacheFraction: 0.125, ScanLimit: 10, Counters: 8}

// LevelNames lists the public levels, lightest first.
func LevelNames() []string {
	names := make([]string, len(levels))
	for i, l := range levels {
		names[i] = l.Name
	}
	return names
}

// ParseLevel returns the public level called name (case-insensitive).
func ParseLevel(name string) (Level, error) {
	for _, l := range levels {
		if strings.EqualFold(strings.TrimSpace(name), l.Name) {
			return l, nil
		}
	}
	return Level{}, fmt.Errorf("unknown stress level %q (want %s)", name, strings.Join(LevelNames(), ", "))
}

// MaxMeasuring is the longest the timed part of a run can take with the
// given number of engines: every test running for its whole Duration.
func (l Level) MaxMeasuring(engines int) time.Duration {
	return time.Duration(len(tests)*engines) * l.Duration
}

// pressureBytes is the size of the Memory Pressure working set.
func (l Level) pressureBytes() int64 { return int64(l.PressureKeys) * int64(l.ValueSize) }

// pressureCache is the cache budget of the Memory Pressure engine.
func (l Level) pressureCache() int64 {
	return max(1, int64(float64(l.pressureBytes())*l.CacheFraction))
}

// String describes the level's parameters in one line.
func (l Level) String() string {
	return fmt.Sprintf("%s: %d workers, %d keys of %d B values; each test stops at %d ops or %v; "+
		"memory pressure: %d keys (%s), in process with the cache set to %s; scans of up to %d keys; %d transaction counters",
		l.Name, l.Workers, l.Keys, l.ValueSize, l.MaxOps, l.Duration,
		l.PressureKeys, formatBytes(l.pressureBytes()), formatBytes(l.pressureCache()), l.ScanLimit, l.Counters)
}

// formatBytes prints n in the largest binary unit that keeps one decimal.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
