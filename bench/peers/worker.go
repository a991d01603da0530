package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"time"
)

// workerEnv, set in a process's environment, makes this program (or this
// package's test binary, see TestMain) a worker: it serves one lane, its
// requests read from file descriptor 3 and its replies written to 4, and
// exits when the lane is closed or its requests end.
//
// Each engine runs in a worker of its own by default, so that no engine
// shares an address space, a Go heap or a garbage collector with another.
// In one process, an engine that changes its page tables (Badger's
// compactions msync and unmap the tables they write) interrupts every
// thread of the process to flush its TLB, whichever engine's round is
// running; a Go program links one of these engines, not five.
const workerEnv = "PEERS_WORKER"

// request is one call of the lane protocol, as a JSON line.
type request struct {
	// Op is "open", "start", "round", "result", "load" or "close".
	Op         string    `json:"op"`
	Spec       *laneSpec `json:"spec,omitempty"`
	Workload   string    `json:"workload,omitempty"`
	Seed       uint64    `json:"seed,omitempty"`
	CPUProfile string    `json:"cpu_profile,omitempty"`
}

// reply answers one request.
type reply struct {
	Error   string  `json:"error,omitempty"`
	Cell    *Cell   `json:"cell,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
}

// workerLane runs the engine in a child process (this executable again,
// with workerEnv set) and drives it through the lane protocol.
type workerLane struct {
	engine string
	cmd    *exec.Cmd
	enc    *json.Encoder
	dec    *json.Decoder
	req    *os.File // our end of the requests pipe
	rep    *os.File // our end of the replies pipe
	// failed is set once the protocol broke: every later call returns it.
	failed error
}

// openWorker starts a worker process and opens spec's store in it. The
// worker builds the table's data set itself from the spec (the same
// deterministic keys, values and sequences as every other lane's).
func openWorker(spec laneSpec) (*workerLane, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("worker: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.ExtraFiles = []*os.File{reqR, repW} // descriptors 3 and 4
	// An engine's own logging goes where the run's progress goes.
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	err = cmd.Start()
	reqR.Close()
	repW.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &workerLane{engine: spec.Engine, cmd: cmd, enc: json.NewEncoder(reqW), dec: json.NewDecoder(repR), req: reqW, rep: repR}
	if _, err := w.call(request{Op: "open", Spec: &spec}); err != nil {
		w.kill()
		return nil, err
	}
	return w, nil
}

// call sends q and waits for its reply. A reply's error is returned as an
// error; a broken pipe or a worker that died ends the lane.
func (w *workerLane) call(q request) (reply, error) {
	if w.failed != nil {
		return reply{}, w.failed
	}
	var r reply
	if err := w.enc.Encode(q); err != nil {
		w.failed = w.exited(fmt.Errorf("%s: %w", q.Op, err))
		return r, w.failed
	}
	if err := w.dec.Decode(&r); err != nil {
		w.failed = w.exited(fmt.Errorf("%s: %w", q.Op, err))
		return r, w.failed
	}
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}

// exited ends a worker whose protocol broke and says how it ended.
func (w *workerLane) exited(cause error) error {
	w.req.Close()
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	var state error
	select {
	case state = <-done:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		state = <-done
	}
	w.rep.Close()
	if state == nil {
		state = errors.New("exited with status 0")
	}
	return fmt.Errorf("%s worker: %v (%v)", w.engine, cause, state)
}

// kill ends the worker at once (after a failed open).
func (w *workerLane) kill() {
	_ = w.cmd.Process.Kill()
	_ = w.cmd.Wait()
	w.req.Close()
	w.rep.Close()
}

func (w *workerLane) start(wl Workload, seed uint64, cpuProfile string) error {
	_, err := w.call(request{Op: "start", Workload: wl.Name, Seed: seed, CPUProfile: cpuProfile})
	return err
}

func (w *workerLane) round() error {
	_, err := w.call(request{Op: "round"})
	return err
}

func (w *workerLane) result() (Cell, error) {
	r, err := w.call(request{Op: "result"})
	if err != nil {
		return Cell{}, err
	}
	if r.Cell == nil {
		return Cell{}, fmt.Errorf("%s worker: a result without a cell", w.engine)
	}
	return *r.Cell, nil
}

func (w *workerLane) load() (time.Duration, error) {
	r, err := w.call(request{Op: "load"})
	return time.Duration(r.Seconds * float64(time.Second)), err
}

func (w *workerLane) close() error {
	_, err := w.call(request{Op: "close"})
	if w.failed != nil {
		return err
	}
	w.req.Close()
	werr := w.cmd.Wait()
	w.rep.Close()
	w.failed = errors.New("closed")
	if err == nil && werr != nil {
		err = fmt.Errorf("%s worker: %w", w.engine, werr)
	}
	return err
}

// workerMain is the worker's whole life: it serves the lane protocol on
// descriptors 3 and 4 and returns the process's exit status.
func workerMain() int {
	in, out := os.NewFile(3, "requests"), os.NewFile(4, "replies")
	if in == nil || out == nil {
		fmt.Fprintf(os.Stderr, "%s is set, but descriptors 3 and 4 are not open: a worker is started by the benchmark, not by hand\n", workerEnv)
		return 2
	}
	if err := serveLane(in, out); err != nil {
		fmt.Fprintf(os.Stderr, "peers worker: %v\n", err)
		return 1
	}
	return 0
}

// serveLane answers lane requests read from in with replies written to out,
// until a close request (after which it returns nil) or the end of in (the
// store, if open, is closed first).
func serveLane(in io.Reader, out io.Writer) error {
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	var l *localLane
	var prof *os.File
	stopProfile := func() error {
		if prof == nil {
			return nil
		}
		pprof.StopCPUProfile()
		err := prof.Close()
		prof = nil
		return err
	}
	defer func() {
		_ = stopProfile()
		if l != nil {
			_ = l.close()
		}
	}()
	for {
		var q request
		if err := dec.Decode(&q); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		var r reply
		var err error
		switch {
		case q.Op == "open" && l == nil && q.Spec != nil:
			d := newDataset(q.Spec.Keys, q.Spec.ValueSize, q.Spec.Hot)
			runtime.GC()
			debug.FreeOSMemory()
			l, err = openLocal(*q.Spec, d)
		case l == nil:
			err = fmt.Errorf("%q before a store was opened", q.Op)
		case q.Op == "start":
			i := slices.IndexFunc(workloads, func(w Workload) bool { return w.Name == q.Workload })
			if i < 0 {
				err = fmt.Errorf("unknown workload %q", q.Workload)
				break
			}
			if err = stopProfile(); err == nil && q.CPUProfile != "" {
				prof, err = startProfile(q.CPUProfile)
			}
			if err == nil {
				err = l.start(workloads[i], q.Seed, "")
			}
		case q.Op == "round":
			err = l.round()
		case q.Op == "result":
			var c Cell
			if c, err = l.result(); err == nil {
				r.Cell = &c
				err = stopProfile()
			}
		case q.Op == "load":
			var took time.Duration
			took, err = l.load()
			r.Seconds = took.Seconds()
		case q.Op == "close":
			err = errors.Join(stopProfile(), l.close())
			l = nil
		default:
			err = fmt.Errorf("unknown request %q", q.Op)
		}
		if err != nil {
			r.Error = err.Error()
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing a reply: %w", err)
		}
		if q.Op == "close" {
			return nil
		}
	}
}

// startProfile starts a Go CPU profile of this process into path.
func startProfile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
