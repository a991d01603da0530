// Package serverproc runs a mantisdb server binary as a child process for
// the harnesses that test the real server (the crash harness, the cluster
// fault harness and its benchmark): it starts the process in an
// environment free of the caller's MANTISDB_* settings, hands its output
// on line by line, reaps it, stops or kills it with bounded waits, and
// polls /health until the server answers.
package serverproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Env is the caller's environment without MANTISDB_* variables, so a token
// or setting of the caller's cannot change the server under test.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MANTISDB_") {
			env = append(env, kv)
		}
	}
	return env
}

// Proc is a process Start started.
type Proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// Start starts bin with args in the environment Env returns. Every line
// the process prints, on its standard output or error (one pipe for both,
// so in order), goes to onLine when it is not nil, from one goroutine;
// lines longer than 1 MiB are dropped. Once the output has ended the
// process is reaped, onExit (when not nil) is called with its state, and
// then Exited is closed.
func Start(bin string, args []string, onLine func(string), onExit func(*os.ProcessState)) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = Env()
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr // one pipe for both, in order
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &Proc{cmd: cmd, exited: make(chan struct{})}
	go p.read(out, onLine, onExit)
	return p, nil
}

// read passes the output on line by line, then reaps the process.
func (p *Proc) read(out io.Reader, onLine func(string), onExit func(*os.ProcessState)) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if onLine != nil {
			onLine(sc.Text())
		}
	}
	_, _ = io.Copy(io.Discard, out)
	p.err = p.cmd.Wait()
	if onExit != nil {
		onExit(p.cmd.ProcessState)
	}
	close(p.exited)
}

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit as exec.Cmd.Wait reports it (nil for status
// 0); it is set once Exited is closed.
func (p *Proc) Err() error { return p.err }

// Running reports whether the process has not exited yet (it may be
// stopped by SIGSTOP).
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL (nothing once the process has exited) and waits up to
// timeout for the process to be reaped.
func (p *Proc) Kill(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("the server was still running %v after SIGKILL", timeout)
	}
}

// Stop shuts the process down cleanly: SIGCONT, in case it was stopped,
// then SIGTERM, and waits up to timeout for it to exit; past that it kills
// it and returns an error. Whether it exited with status 0 is Err's.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Signal(syscall.SIGCONT)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		_ = p.Kill(timeout)
		return fmt.Errorf("the server did not exit within %v of SIGTERM", timeout)
	}
}

// ErrExited is WaitHealthy's answer when the process exited first.
var ErrExited = errors.New("the server exited during start-up")

// WaitHealthy polls base+"/health" (base such as http://127.0.0.1:41234)
// until it answers 200, for at most timeout. It gives up early when ctx
// ends, or when exited (nil: never) closes, with ErrExited.
func WaitHealthy(ctx context.Context, base string, timeout time.Duration, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-exited:
			return ErrExited
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("/health did not answer 200 within %v: %v", timeout, last)
}
