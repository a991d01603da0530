package crashtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Launcher starts the server under test. Every start serves the same
// data, so what one instance acknowledged the next must hold.
type Launcher interface {
	// Start starts the server and returns once it listens.
	Start(ctx context.Context) (Instance, error)
	// StartAndKill starts the server and kills it after d, whether or not
	// it is listening yet: a crash during recovery.
	StartAndKill(ctx context.Context, d time.Duration) error
}

// Instance is one running server.
type Instance interface {
	// URL is the base URL, such as http://127.0.0.1:41234.
	URL() string
	// RESPAddr is the Redis-protocol address, such as 127.0.0.1:41235, or
	// "" when the server does not serve it.
	RESPAddr() string
	// Kill stops the server at once (SIGKILL) and returns once it is gone.
	Kill() error
	// Stop shuts the server down cleanly (SIGTERM); an error unless it
	// exits with status 0.
	Stop() error
}

// Process launches a server binary on a data directory with --sync always,
// on a free loopback port.
type Process struct {
	// Bin is the server binary, such as ./mantisdb-rust.
	Bin string
	// DataDir is the data directory, kept between starts.
	DataDir string
	// Log receives the standard output and error of every start, each
	// start headed by a line of its own.
	Log io.Writer
	// StartTimeout bounds the wait for the listening line (recovery runs
	// before it).
	StartTimeout time.Duration
	// ExtraArgs follow the harness's own flags, so they can add settings
	// or override one (such as --sync never, to see the harness catch the
	// losses it allows).
	ExtraArgs []string
	// RESP serves the Redis protocol too, on a free loopback port read back
	// from its start-up line, for a run whose writers speak it
	// (Config.Protocol "resp"); without it the port is off.
	RESP bool

	mu     sync.Mutex // serialises writes to Log
	starts int
}

// serverArgs are the flags of every start: a port the kernel picks, read
// back from the JSON start-up line, and acknowledgement only after
// fdatasync.
func (p *Process) serverArgs() []string {
	respPort := "-1"
	if p.RESP {
		respPort = "0"
	}
	args := []string{"--port", "0", "--resp-port", respPort, "--bind", "127.0.0.1", "--data-dir", p.DataDir,
		"--sync", "always", "--log-format", "json", "--log-level", "info"}
	return append(args, p.ExtraArgs...)
}

// serverEnv is the harness's environment without MANTISDB_* variables, so
// a token or setting of the caller's cannot change the server under test.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MANTISDB_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a started server process.
type proc struct {
	p    *Process
	cmd  *exec.Cmd
	addr chan string
	// respAddr receives the Redis-protocol address, logged after addr.
	respAddr chan string
	exited   chan struct{}
	err      error // Wait's result, once exited is closed

	tailMu sync.Mutex
	tail   []string // the last lines it printed, for error messages
}

func (p *Process) logf(format string, args ...any) {
	if p.Log == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.Log, format, args...)
}

func (p *Process) launch() (*proc, error) {
	p.mu.Lock()
	p.starts++
	n := p.starts
	p.mu.Unlock()
	p.logf("--- start %d at %s: %s %s\n", n, time.Now().Format(time.RFC3339Nano), p.Bin, strings.Join(p.serverArgs(), " "))

	cmd := exec.Command(p.Bin, p.serverArgs()...)
	cmd.Env = serverEnv()
	out, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr // one pipe for both, in order
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", p.Bin, err)
	}
	pr := &proc{p: p, cmd: cmd, addr: make(chan string, 1), respAddr: make(chan string, 1), exited: make(chan struct{})}
	go pr.read(out)
	return pr, nil
}

// read copies the server's output to the log, keeps its tail, and sends
// the listening addresses (HTTP, and the Redis protocol's when it serves
// it) once each, then reaps the process.
func (pr *proc) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent, sentRESP := false, false
	for sc.Scan() {
		line := sc.Text()
		pr.p.logf("%s\n", line)
		pr.tailMu.Lock()
		pr.tail = append(pr.tail, line)
		if len(pr.tail) > 20 {
			pr.tail = pr.tail[1:]
		}
		pr.tailMu.Unlock()
		var l struct{ Msg, Addr string }
		if (sent && sentRESP) || json.Unmarshal([]byte(line), &l) != nil || l.Addr == "" {
			continue
		}
		switch {
		case !sent && l.Msg == "mantisdb listening":
			pr.addr <- l.Addr
			sent = true
		case !sentRESP && l.Msg == "mantisdb serving the Redis protocol":
			pr.respAddr <- l.Addr
			sentRESP = true
		}
	}
	_, _ = io.Copy(io.Discard, out)
	pr.err = pr.cmd.Wait()
	pr.p.logf("--- exited: %v\n", pr.cmd.ProcessState)
	close(pr.exited)
}

func (pr *proc) lastLines() string {
	pr.tailMu.Lock()
	defer pr.tailMu.Unlock()
	return strings.Join(pr.tail, "\n")
}

// Start implements Launcher.
func (p *Process) Start(ctx context.Context) (Instance, error) {
	pr, err := p.launch()
	if err != nil {
		return nil, err
	}
	timeout := p.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := time.After(timeout)
	in := &instance{proc: pr}
	for in.url == "" || (p.RESP && in.respAddr == "") {
		select {
		case a := <-pr.addr:
			in.url = "http://" + a
		case a := <-pr.respAddr:
			in.respAddr = a
		case <-pr.exited:
			return nil, fmt.Errorf("the server exited at start-up (%v); its last lines:\n%s", pr.err, pr.lastLines())
		case <-deadline:
			_ = pr.kill()
			return nil, fmt.Errorf("the server did not listen within %v; its last lines:\n%s", timeout, pr.lastLines())
		case <-ctx.Done():
			_ = pr.kill()
			return nil, ctx.Err()
		}
	}
	return in, nil
}

// StartAndKill implements Launcher.
func (p *Process) StartAndKill(ctx context.Context, d time.Duration) error {
	pr, err := p.launch()
	if err != nil {
		return err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	return pr.kill()
}

// kill sends SIGKILL (a no-op once the process has exited) and waits for
// the process to be reaped.
func (pr *proc) kill() error {
	if err := pr.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	select {
	case <-pr.exited:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("the server was still running 30s after SIGKILL")
	}
}

// instance is a server that listens.
type instance struct {
	*proc
	url      string
	respAddr string
}

func (in *instance) URL() string { return in.url }

func (in *instance) RESPAddr() string { return in.respAddr }

// Kill implements Instance. A server that had already exited is an
// error: it stopped by itself under load.
func (in *instance) Kill() error {
	select {
	case <-in.exited:
		return fmt.Errorf("the server had exited by itself before the kill (%v); its last lines:\n%s", in.err, in.lastLines())
	default:
	}
	return in.kill()
}

func (in *instance) Stop() error {
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-in.exited:
	case <-time.After(60 * time.Second):
		_ = in.kill()
		return errors.New("the server did not exit within 60s of SIGTERM")
	}
	if in.err != nil {
		return fmt.Errorf("the server exited with %v after SIGTERM; its last lines:\n%s", in.err, in.lastLines())
	}
	return nil
}
