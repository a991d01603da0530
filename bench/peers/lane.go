package main

import (
	"fmt"
	"time"
)

// lane drives one engine's store through a table: the workloads started
// one after another, each measured a round at a time so that the rounds of
// different engines interleave. A lane runs the engine in a process of its
// own (workerLane, the default) or in this process (localLane, with
// -one-process).
type lane interface {
	// start prepares workload w; seed selects its random sequence. When
	// cpuProfile is set, the lane's process writes a Go CPU profile of the
	// cell's rounds there (a worker's profile is of its own process; a
	// local lane's is taken by the profiler, and cpuProfile is empty).
	start(w Workload, seed uint64, cpuProfile string) error
	// round measures the started workload's next round, if one is left.
	round() error
	// result is the started workload's cell (the median round).
	result() (Cell, error)
	// load writes the keys put-seq did not reach, untimed.
	load() (time.Duration, error)
	// close closes the store (and ends the lane's process, if it has one).
	close() error
}

// laneSpec is everything a lane needs to open its store and build the
// table's data set: plain values, so a worker process can be given it.
type laneSpec struct {
	Engine    string `json:"engine"`
	Dir       string `json:"dir"`
	Sync      bool   `json:"sync"`
	Keys      int    `json:"keys"`
	ValueSize int    `json:"value_size"`
	Hot       int    `json:"hot"`
	Ops       int    `json:"ops"`
	CapNs     int64  `json:"cap_ns"`
	Rounds    int    `json:"rounds"`
	Verify    bool   `json:"verify"`
}

func (s laneSpec) limits() limits {
	return limits{ops: s.Ops, cap: time.Duration(s.CapNs), rounds: s.Rounds, verify: s.Verify}
}

// localLane runs the engine in this process.
type localLane struct {
	r   *runner
	cur *cellRun
}

// openLocal opens spec's store in this process; d is the table's data set
// (shared by every local lane of the table: nothing writes to it).
func openLocal(spec laneSpec, d *dataset) (*localLane, error) {
	engs, err := selectEngines([]string{spec.Engine})
	if err != nil {
		return nil, err
	}
	s, err := engs[0].Open(spec.Dir, spec.Sync)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return &localLane{r: &runner{s: s, d: d, lim: spec.limits()}}, nil
}

func (l *localLane) start(w Workload, seed uint64, cpuProfile string) error {
	if cpuProfile != "" {
		return fmt.Errorf("a local lane is profiled by its process's profiler, not given %s", cpuProfile)
	}
	l.cur = l.r.start(w, seed)
	return nil
}

func (l *localLane) round() error {
	if l.cur == nil {
		return fmt.Errorf("round before start")
	}
	l.cur.round()
	return nil
}

func (l *localLane) result() (Cell, error) {
	if l.cur == nil {
		return Cell{}, fmt.Errorf("result before start")
	}
	c := l.cur.result()
	l.cur = nil
	return c, nil
}

func (l *localLane) load() (time.Duration, error) { return l.r.load() }

func (l *localLane) close() error { return l.r.s.Close() }
