package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// SchemaVersion is the version of the JSON report; it changes when a field
// changes meaning or goes away.
const SchemaVersion = 1

// Report is the outcome of a run, as written to --benchmark-output.
type Report struct {
	// Version is SchemaVersion.
	Version int `json:"version"`
	// MantisDBVersion is the version of the binary that ran the suite.
	MantisDBVersion string    `json:"mantisdb_version,omitempty"`
	Started         time.Time `json:"started"`
	Machine         Machine   `json:"machine"`
	Config          RunConfig `json:"config"`
	Targets         Targets   `json:"targets"`
	// Tests holds every test in the order it ran.
	Tests []TestReport `json:"tests"`
	// Pass is true when every test passed on every engine.
	Pass bool `json:"pass"`
}

// Machine is where the suite ran (the client's machine in target mode).
type Machine struct {
	Hostname string `json:"hostname"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	NumCPU   int    `json:"num_cpu"`
	// CPUModel is the first "model name" of /proc/cpuinfo, empty when absent.
	CPUModel string `json:"cpu_model,omitempty"`
}

// RunConfig is what the suite ran with.
type RunConfig struct {
	Level string `json:"level"`
	// Engines names the engines in the order they ran; in target mode, the
	// server's engine.
	Engines []string `json:"engines"`
	// Sync is the engines' sync policy; empty in target mode, where it is
	// the server's setting.
	Sync string `json:"sync,omitempty"`
	// Target is the server's URL in target mode, else empty.
	Target    string `json:"target,omitempty"`
	Workers   int    `json:"workers"`
	Keys      int    `json:"keys"`
	ValueSize int    `json:"value_size"`
	// DurationS is the time limit of each test, in seconds.
	DurationS float64 `json:"duration_s"`
	// MaxOps is the operation limit of each test.
	MaxOps       int64 `json:"max_ops"`
	PressureKeys int   `json:"pressure_keys"`
	// PressureCacheBytes is the cache the engine gets in Memory Pressure
	// (in process only).
	PressureCacheBytes int64 `json:"pressure_cache_bytes"`
	// CacheSize is the cache of the engines of the other tests, in bytes
	// (in process only).
	CacheSize int64 `json:"cache_size"`
}

// TestReport is one test's results per engine.
type TestReport struct {
	// ID is the test's stable identifier, e.g. "sequential_writes".
	ID   string `json:"id"`
	Name string `json:"name"`
	// Engines maps an engine name to its result.
	Engines map[string]*Result `json:"engines"`
}

// Result is one test on one engine.
type Result struct {
	// Ops counts successful operations.
	Ops       int64   `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// Errors counts failed operations (and, for Transactions, lost updates).
	Errors   int64   `json:"errors"`
	Latency  Latency `json:"latency_us"`
	ElapsedS float64 `json:"elapsed_s"`
	// CacheHitRate is hits/(hits+misses) over the test; null when the engine
	// made no cache lookups (the memory engine has no cache).
	CacheHitRate *float64 `json:"cache_hit_rate"`
	// Conflicts counts transaction conflicts that were retried.
	Conflicts int64 `json:"conflicts,omitempty"`
	// FirstError is the message of the first failed operation.
	FirstError string `json:"first_error,omitempty"`
	// Note says something the figures alone do not, e.g. that the cache
	// held the whole working set.
	Note string `json:"note,omitempty"`
	Pass bool   `json:"pass"`
	// Failures says which targets the test missed.
	Failures []string `json:"failures,omitempty"`
}

// Latency are percentiles of successful operations, in microseconds.
type Latency struct {
	P50  int64   `json:"p50"`
	P95  int64   `json:"p95"`
	P99  int64   `json:"p99"`
	P999 int64   `json:"p999"`
	Max  int64   `json:"max"`
	Mean float64 `json:"mean"`
}

// WriteFile writes the report as indented JSON to path, through a
// temporary file renamed into place, so a reader never sees half a report.
func (r *Report) WriteFile(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ReadReport reads a report WriteFile wrote, refusing other schema versions.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != SchemaVersion {
		return nil, fmt.Errorf("%s: report schema version %d, want %d", path, r.Version, SchemaVersion)
	}
	return &r, nil
}

// CheckOutputPath reports whether a report can be written to path, before
// a run spends minutes: its directory must exist and take new files, and
// an existing path must be a regular file.
func CheckOutputPath(path string) error {
	if strings.TrimSpace(path) == "" {
		return errors.New("the output path is empty")
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".probe-*")
	if err != nil {
		return fmt.Errorf("cannot write to the directory of %s: %w", path, err)
	}
	return errors.Join(f.Close(), os.Remove(f.Name()))
}

// currentMachine describes this machine.
func currentMachine() Machine {
	host, _ := os.Hostname()
	return Machine{
		Hostname: host,
		GOOS:     runtime.GOOS,
		GOARCH:   runtime.GOARCH,
		NumCPU:   runtime.NumCPU(),
		CPUModel: cpuModel("/proc/cpuinfo"),
	}
}

// cpuModel returns the first "model name" in a cpuinfo file, or "".
func cpuModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}
