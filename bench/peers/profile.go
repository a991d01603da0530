package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
)

// profiler brackets the measured rounds of each cell (not the fill before
// them) with a Go CPU profile and/or a perf control FIFO, so that a
// profile of one workload holds that workload only. Run with -engines
// mantisdb (or one engine) so the profile holds one engine's work.
type profiler struct {
	// cpuPrefix, when set, names the Go CPU profiles:
	// cpuPrefix-<name>.pprof.
	cpuPrefix string
	// perfCtl, when set, is a FIFO that perf record --control reads:
	// "enable" is written before the rounds and "disable" after.
	perfCtl string
	// only, when set, limits profiling to these workloads.
	only map[string]bool
}

// start begins profiling the cell of workload w called name and returns
// the function that ends it.
func (p profiler) start(w, name string) (func() error, error) {
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
	if p.cpuPrefix != "" {
		f, err := os.Create(fmt.Sprintf("%s-%s.pprof", p.cpuPrefix, name))
		if err != nil {
			return stop, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
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
