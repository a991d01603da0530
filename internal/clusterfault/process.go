package clusterfault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mantisdb/mantisdb/internal/serverproc"
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

	mu   sync.Mutex
	proc *serverproc.Proc
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

// freePort returns a port free on host now, for a node process to bind
// later. It is taken below the kernel's ephemeral range: a port the kernel
// picked for a bind to port 0 can be handed to another socket of the
// machine between this check and the node's bind (a node of TestShortRun
// once failed to start with "address already in use" while other test
// packages ran beside it), whereas ports below that range go only to
// those who ask for them by number. Each process starts at a random port
// and hands out each one once; where the range cannot be read, the kernel
// picks as before.
func freePort(host string) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.next == 0 {
		low, ok := ephemeralLow()
		if !ok || low <= portFloor+1000 {
			ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				return 0, err
			}
			defer ln.Close()
			return ln.Addr().(*net.TCPAddr).Port, nil
		}
		ports.ceiling = low
		ports.next = portFloor + rand.IntN(low-portFloor)
	}
	for range ports.ceiling - portFloor {
		p := ports.next
		if ports.next++; ports.next == ports.ceiling {
			ports.next = portFloor
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			_ = ln.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port on %s between %d and %d", host, portFloor, ports.ceiling-1)
}

// portFloor is the lowest port freePort hands out.
const portFloor = 20000

// ports is freePort's state: the next port to try, and the first port of
// the kernel's ephemeral range (exclusive bound).
var ports struct {
	sync.Mutex
	next, ceiling int
}

// ephemeralLow is the first port of the range the kernel picks from for a
// bind to port 0 (Linux).
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	low, err := strconv.Atoi(f[0])
	return low, err == nil
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
	p, err := serverproc.Start(bin, args, n.logLine, n.logExit)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.id, err)
	}
	n.proc = p
	return nil
}

// logLine writes one line of the process's output to the log, prefixed
// with the node id, one node at a time.
func (n *node) logLine(line string) {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	_, _ = io.WriteString(n.log, n.id+" "+line+"\n")
}

// logExit writes the exit status (a signal or a code) to the log, where a
// process that died on its own would otherwise leave no trace.
func (n *node) logExit(st *os.ProcessState) {
	n.logLine(fmt.Sprintf("process %d exited: %v", st.Pid(), st))
}

// running is the process of the last start, or nil before the first.
func (n *node) running() *serverproc.Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// waitHealthy waits until the process answers /health.
func (n *node) waitHealthy(ctx context.Context, timeout time.Duration) error {
	err := serverproc.WaitHealthy(ctx, "http://"+n.httpAddr, timeout, n.running().Exited())
	if errors.Is(err, serverproc.ErrExited) {
		return fmt.Errorf("%s exited during start-up (see the log)", n.id)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", n.id, err)
	}
	return nil
}

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) error {
	p := n.running()
	if p == nil {
		return fmt.Errorf("%s is not running", n.id)
	}
	return p.Signal(sig)
}

// kill stops the process at once and waits for it.
func (n *node) kill() error {
	p := n.running()
	if p == nil {
		return nil
	}
	if err := p.Kill(10 * time.Second); err != nil {
		return fmt.Errorf("%s: %w", n.id, err)
	}
	return nil
}

// alive reports whether the process runs (paused or not).
func (n *node) alive() bool {
	p := n.running()
	return p != nil && p.Running()
}

// stop ends the process cleanly (SIGCONT first, in case it was paused).
func (n *node) stop() {
	if !n.alive() {
		return
	}
	_ = n.running().Stop(10 * time.Second)
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
