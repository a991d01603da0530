package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mantisdb/mantisdb/internal/serverproc"
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

// proc is a started server process.
type proc struct {
	*serverproc.Proc
	p    *Process
	addr chan string
	// respAddr receives the Redis-protocol address, logged after addr.
	respAddr chan string

	sent, sentRESP bool // addr and respAddr have their address

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

	pr := &proc{p: p, addr: make(chan string, 1), respAddr: make(chan string, 1)}
	sp, err := serverproc.Start(p.Bin, p.serverArgs(), pr.line, func(st *os.ProcessState) { p.logf("--- exited: %v\n", st) })
	if err != nil {
		return nil, err
	}
	pr.Proc = sp
	return pr, nil
}

// line copies one line of the server's output to the log, keeps the tail,
// and sends the listening addresses (HTTP, and the Redis protocol's when
// it serves it) once each.
func (pr *proc) line(line string) {
	pr.p.logf("%s\n", line)
	pr.tailMu.Lock()
	pr.tail = append(pr.tail, line)
	if len(pr.tail) > 20 {
		pr.tail = pr.tail[1:]
	}
	pr.tailMu.Unlock()
	var l struct{ Msg, Addr string }
	if (pr.sent && pr.sentRESP) || json.Unmarshal([]byte(line), &l) != nil || l.Addr == "" {
		return
	}
	switch {
	case !pr.sent && l.Msg == "mantisdb listening":
		pr.addr <- l.Addr
		pr.sent = true
	case !pr.sentRESP && l.Msg == "mantisdb serving the Redis protocol":
		pr.respAddr <- l.Addr
		pr.sentRESP = true
	}
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
		case <-pr.Exited():
			return nil, fmt.Errorf("the server exited at start-up (%v); its last lines:\n%s", pr.Err(), pr.lastLines())
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

// killTimeout bounds the wait for a killed server to be reaped.
const killTimeout = 30 * time.Second

// kill sends SIGKILL (a no-op once the process has exited) and waits for
// the process to be reaped.
func (pr *proc) kill() error { return pr.Kill(killTimeout) }

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
	if !in.Running() {
		return fmt.Errorf("the server had exited by itself before the kill (%v); its last lines:\n%s", in.Err(), in.lastLines())
	}
	return in.kill()
}

func (in *instance) Stop() error {
	if err := in.proc.Stop(60 * time.Second); err != nil {
		return err
	}
	if err := in.Err(); err != nil {
		return fmt.Errorf("the server exited with %v after SIGTERM; its last lines:\n%s", err, in.lastLines())
	}
	return nil
}
