package clusterfault

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one server process of the cluster under test, with fixed ports
// across restarts: HTTP on 127.0.0.1, raft on its own loopback address
// 127.0.0.(index+2) behind its proxy.
type node struct {
	index    int
	id       string
	httpAddr string
	respPort int
	raftAddr string
	proxy    *proxy
	dataDir  string
	log      io.Writer
	logMu    *sync.Mutex

	// direct makes the node advertise its raft address itself, bypassing
	// its proxy (the benchmark measures the cluster, not the proxy).
	direct bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// nodeIP is node i's loopback address; the proxy identifies it by it.
func nodeIP(i int) string { return fmt.Sprintf("127.0.0.%d", i+2) }

// sourceNode maps a connection's source address to its node.
func sourceNode(a net.Addr) (int, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return 0, false
	}
	ip := ta.IP.To4()
	if ip == nil || ip[0] != 127 || ip[1] != 0 || ip[2] != 0 || ip[3] < 2 || ip[3] > 250 {
		return 0, false
	}
	return int(ip[3]) - 2, true
}

// freePort returns a port free on host now.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start launches the process; first says it is the node's first start
// (bootstrap for node 0, join for the others).
func (n *node) start(bin, engine string, first bool, joinAddr string, extra []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	host, port, _ := net.SplitHostPort(n.httpAddr)
	advertise := n.proxy.addr()
	if n.direct {
		advertise = n.raftAddr
	}
	args := []string{
		"--engine", engine, "--node-id", n.id, "--bind", host, "--port", port,
		"--resp-port", strconv.Itoa(n.respPort),
		"--raft-addr", n.raftAddr, "--raft-advertise", advertise,
		"--data-dir", n.dataDir, "--sync", "always", "--log-format", "json", "--log-level", "warn",
	}
	if first {
		if n.index == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", joinAddr)
		}
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = serverEnv()
	w := &lockedWriter{w: n.log, mu: n.logMu, prefix: n.id + " "}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.id, err)
	}
	n.cmd, n.exited, n.paused = cmd, make(chan struct{}), false
	go func(c *exec.Cmd, done chan struct{}) {
		_ = c.Wait()
		// The exit status (a signal or a code) goes into the log, where a
		// process that died on its own would otherwise leave no trace.
		fmt.Fprintf(w, "process %d exited: %v\n", c.Process.Pid, c.ProcessState)
		close(done)
	}(cmd, n.exited)
	return nil
}

// waitHealthy waits until the process answers /health.
func (n *node) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 500 * time.Millisecond}
	for time.Now().Before(deadline) {
		n.mu.Lock()
		exited := n.exited
		n.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start-up (see the log)", n.id)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get("http://" + n.httpAddr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer /health within %v", n.id, timeout)
}

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return fmt.Errorf("%s is not running", n.id)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.cmd.Process.Signal(sig)
}

// kill stops the process at once and waits for it.
func (n *node) kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not exit after SIGKILL", n.id)
	}
}

// alive reports whether the process runs (paused or not).
func (n *node) alive() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// stop ends the process cleanly (SIGCONT first, in case it was paused).
func (n *node) stop() {
	if !n.alive() {
		return
	}
	_ = n.signal(syscall.SIGCONT)
	_ = n.signal(syscall.SIGTERM)
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = n.kill()
	}
}

// serverEnv is the harness's environment without MANTISDB_* variables, so
// a setting of the caller's cannot change the servers under test.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MANTISDB_") {
			env = append(env, kv)
		}
	}
	return env
}

// lockedWriter prefixes each write with the node id, one writer at a time.
type lockedWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(l.w, l.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// newNodes allocates ports, proxies and data directories for n nodes.
func newNodes(count int, dir string, f *faults, log io.Writer) ([]*node, error) {
	var logMu sync.Mutex
	nodes := make([]*node, count)
	for i := range count {
		hp, err := freePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		respPort, err := freePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		rp, err := freePort(nodeIP(i))
		if err != nil {
			return nil, fmt.Errorf("bind %s (loopback addresses beyond 127.0.0.1 are needed): %w", nodeIP(i), err)
		}
		raftAddr := net.JoinHostPort(nodeIP(i), strconv.Itoa(rp))
		p, err := startProxy(i, raftAddr, f, sourceNode)
		if err != nil {
			return nil, err
		}
		nodes[i] = &node{
			index: i, id: fmt.Sprintf("n%d", i+1),
			httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(hp)),
			respPort: respPort,
			raftAddr: raftAddr, proxy: p,
			dataDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			log:     log, logMu: &logMu,
		}
	}
	return nodes, nil
}
