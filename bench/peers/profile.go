package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
)

// profiler brackets the measured rounds of each cell (not the fill before
// them) with a Go CPU profile and/or a perf control FIFO, so that a
// profile of one workload holds that workload only. Each engine's worker
// profiles its own process; with -one-process, run with -engines mantisdb
// (or one engine) so that the one profile holds one engine's work.
type profiler struct {
	// cpuPrefix, when set, names the Go CPU profiles:
	// cpuPrefix-<name>.pprof (see cpuFile).
	cpuPrefix string
	// perfCtl, when set, is a FIFO that perf record --control reads:
	// "enable" is written before the rounds and "disable" after.
	perfCtl string
	// only, when set, limits profiling to these workloads.
	only map[string]bool
}

// cpuFile is where the Go CPU profile of the cell of workload w called
// name goes ("" when none is taken); engine, when set, is added to the
// name, for a run whose engines each profile their own process.
func (p profiler) cpuFile(w, name, engine string) string {
	if p.cpuPrefix == "" || (p.only != nil && !p.only[w]) {
		return ""
	}
	if engine != "" {
		name += "-" + engine
	}
	return fmt.Sprintf("%s-%s.pprof", p.cpuPrefix, name)
}

// start begins profiling the cell of workload w called name and returns
// the function that ends it. goProfile says whether this process takes the
// Go CPU profile (engines run in this process); otherwise each worker
// takes its own (see cpuFile).
func (p profiler) start(w, name string, goProfile bool) (func() error, error) {
	var stops []func() error
	if p.only != nil && !p.only[w] {
		return func() error { return nil }, nil
	}
	stop := func() error {
		var errs []error
		for _, f := range stops {
			errs = append(errs, f())
		}
		return errors.Join(errs...)
	}
	if path := p.cpuFile(w, name, ""); goProfile && path != "" {
		f, err := startProfile(path)
		if err != nil {
			return stop, err
		}
		stops = append(stops, func() error {
			pprof.StopCPUProfile()
			return f.Close()
		})
	}
	if p.perfCtl != "" {
		if err := perfCommand(p.perfCtl, "enable"); err != nil {
			return stop, err
		}
		stops = append(stops, func() error { return perfCommand(p.perfCtl, "disable") })
	}
	return stop, nil
}

// perfCommand writes one command line to perf's control FIFO.
func perfCommand(fifo, cmd string) error {
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("perf control %s: %w", fifo, err)
	}
	_, err = f.WriteString(cmd + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
