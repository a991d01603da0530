package cluster

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Raft traffic and the cluster's own RPCs (forwarded writes, read indexes,
// membership) share each node's one raft address. raft's network transport
// opens every connection by writing an RPC type byte below 0x10; a cluster
// RPC connection opens with rpcMagic instead. muxLayer accepts connections,
// reads that first byte, and hands raft its connections (with the byte put
// back) and the cluster RPC server the others. One address per node keeps
// configuration simple, and a fault proxy in front of it sees all traffic
// between nodes.
const rpcMagic = 'M'

// firstByteTimeout bounds how long an accepted connection may stay silent
// before it says what it is.
const firstByteTimeout = 10 * time.Second

// muxLayer is a raft.StreamLayer over one TCP listener.
type muxLayer struct {
	ln        net.Listener
	advertise net.Addr
	dialer    *net.Dialer
	raftConns chan net.Conn
	serveRPC  func(net.Conn)
	done      chan struct{}
	closeOnce sync.Once
}

func newMuxLayer(ln net.Listener, advertise net.Addr, serveRPC func(net.Conn)) *muxLayer {
	m := &muxLayer{ln: ln, advertise: advertise, dialer: newDialer(ln.Addr()), raftConns: make(chan net.Conn), serveRPC: serveRPC, done: make(chan struct{})}
	go m.acceptLoop()
	return m
}

func (m *muxLayer) acceptLoop() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.Close()
			return
		}
		go m.classify(c)
	}
}

func (m *muxLayer) classify(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(firstByteTimeout))
	br := bufio.NewReader(c)
	b, err := br.ReadByte()
	if err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	_ = br.UnreadByte()
	bc := &bufferedConn{Conn: c, r: br}
	if b == rpcMagic {
		_, _ = br.ReadByte()
		m.serveRPC(bc)
		return
	}
	select {
	case m.raftConns <- bc:
	case <-m.done:
		_ = c.Close()
	}
}

// Accept implements net.Listener for raft.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConns:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (m *muxLayer) Close() error {
	m.closeOnce.Do(func() {
		close(m.done)
		_ = m.ln.Close()
	})
	return nil
}

// Addr implements net.Listener; it is the address other nodes dial.
func (m *muxLayer) Addr() net.Addr { return m.advertise }

// Dial implements raft.StreamLayer.
func (m *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := *m.dialer
	d.Timeout = timeout
	return d.Dial("tcp", string(address))
}

// newDialer returns the dialer of a node listening on local. A node bound
// to a loopback address other than 127.0.0.1 dials from that address, so
// that on one machine each node's connections carry its own source address:
// the fault harness's proxy tells nodes apart by it.
func newDialer(local net.Addr) *net.Dialer {
	d := &net.Dialer{Timeout: 2 * time.Second}
	if ta, ok := local.(*net.TCPAddr); ok && ta.IP.IsLoopback() && !ta.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		d.LocalAddr = &net.TCPAddr{IP: ta.IP}
	}
	return d
}

// bufferedConn reads through the reader that peeked its first byte.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
