package clusterfault

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// The fault proxy sits in front of each node's raft address: a node
// advertises its proxy's address, so every connection another node opens to
// it passes through the proxy, and nodes dial from their own loopback
// address (127.0.0.N+1), so the proxy knows which node a connection comes
// from. Faults are set per pair of nodes and act on open connections at
// once, with no root privileges:
//
//	drop       connections are closed and new ones refused (peers see resets)
//	blackhole  bytes are swallowed in both directions (peers see timeouts)
//	delay      every chunk is held for the given time before it is passed on
type linkMode int

const (
	linkOK linkMode = iota
	linkDrop
	linkBlackhole
)

func (m linkMode) String() string {
	return [...]string{"ok", "drop", "blackhole"}[m]
}

// link is the fault state between two nodes.
type link struct {
	mode  linkMode
	delay time.Duration
}

// faults is the fault table shared by every node's proxy.
type faults struct {
	mu    sync.Mutex
	links map[[2]int]link
	conns map[[2]int]map[*proxyConn]struct{}
}

func newFaults() *faults {
	return &faults{links: make(map[[2]int]link), conns: make(map[[2]int]map[*proxyConn]struct{})}
}

func pair(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

// set changes the link between a and b; a drop closes its connections.
func (f *faults) set(a, b int, l link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := pair(a, b)
	f.links[p] = l
	if l.mode == linkDrop {
		for c := range f.conns[p] {
			c.close()
		}
	}
}

// isolate sets every link of node n among nodes nodes.
func (f *faults) isolate(n, nodes int, l link) {
	for i := range nodes {
		if i != n {
			f.set(n, i, l)
		}
	}
}

// heal clears every fault.
func (f *faults) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = make(map[[2]int]link)
}

func (f *faults) get(p [2]int) link {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[p]
}

func (f *faults) track(p [2]int, c *proxyConn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !add {
		delete(f.conns[p], c)
		return true
	}
	if f.links[p].mode == linkDrop {
		return false
	}
	if f.conns[p] == nil {
		f.conns[p] = make(map[*proxyConn]struct{})
	}
	f.conns[p][c] = struct{}{}
	return true
}

// proxy forwards connections to one node's real raft address.
type proxy struct {
	node   int
	ln     net.Listener
	target string
	faults *faults
	// source maps a dialing node's loopback IP to its index.
	source func(net.Addr) (int, bool)
	wg     sync.WaitGroup
}

func startProxy(node int, target string, f *faults, source func(net.Addr) (int, bool)) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{node: node, ln: ln, target: target, faults: f, source: source}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) close() {
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

// proxyConn is one client connection and its upstream. A drop may close
// it from the nemesis while serve is still dialling the upstream.
type proxyConn struct {
	mu         sync.Mutex
	closed     bool
	down, up   net.Conn
	pairOfLink [2]int
}

func (c *proxyConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	_ = c.down.Close()
	if c.up != nil {
		_ = c.up.Close()
	}
}

// setUp records the upstream; false (and up closed) if c was closed first.
func (c *proxyConn) setUp(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = up.Close()
		return false
	}
	c.up = up
	return true
}

func (p *proxy) serve(down net.Conn) {
	from, known := p.source(down.RemoteAddr())
	if !known {
		// Not a node (a person's tool): pass it through untouched.
		from = p.node
	}
	lp := pair(from, p.node)
	c := &proxyConn{down: down, pairOfLink: lp}
	if from != p.node && !p.faults.track(lp, c, true) {
		_ = down.Close()
		return
	}
	defer p.faults.track(lp, c, false)
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		_ = down.Close()
		return
	}
	if !c.setUp(up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pump(c, up, down, lp, from == p.node); done <- struct{}{} }()
	go func() { p.pump(c, down, up, lp, from == p.node); done <- struct{}{} }()
	<-done
	c.close()
	<-done
}

// pump copies src to dst chunk by chunk, applying the link's fault.
func (p *proxy) pump(c *proxyConn, dst, src net.Conn, lp [2]int, exempt bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l := link{}
			if !exempt {
				l = p.faults.get(lp)
			}
			switch l.mode {
			case linkDrop:
				c.close()
				return
			case linkBlackhole:
				continue
			}
			if l.delay > 0 {
				time.Sleep(l.delay)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
