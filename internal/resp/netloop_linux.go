//go:build linux

package resp

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The event-loop transport. A goroutine per connection costs each
// unpipelined request a read, a write and a second read that finds nothing
// and parks the goroutine, then a netpoller wake-up and a hand-off between
// threads to run it again. Here a few loops (one per CPU) each wait in one
// epoll_wait for all their connections, and serve every ready one with one
// read and one write: the request reader reads the non-blocking socket
// directly, and a read that returned less than it asked for marks the
// socket drained, so the loop goes back to epoll_wait without the read
// that would only say EAGAIN.
//
// A batch of requests runs on the loop only when none of its commands can
// wait (a read, or a write when writes do not wait for a sync or a
// replica, or a cheap connection command), or, under --sync always, when
// it is made only of writes whose acknowledgement can wait for the end of
// the loop's pass (deferral.go: the loop then syncs once for every
// connection it served, and sends their replies). Any other batch (EXEC,
// KEYS, INFO, CLIENT, other writes under --sync always...) runs on a
// goroutine of its own, which takes the connection out of the loop's
// epoll set: the later input of that connection waits in the socket until
// its replies are written, so replies leave in request order. The
// goroutine serves what follows until the socket is drained, then gives
// the connection back.
//
// Where writes wait (--sync always), a connection whose writes keep
// coming stays with its goroutine: once drained, the goroutine waits for
// the next requests itself, in Go's netpoller, rather than handing the
// connection back and forth (two epoll_ctl, a new goroutine and a second
// wake-up per write). It gives the connection back to the loop after
// stickyReads batches in a row that the loop could have run (a client
// that now only reads), or after stickyIdle without input, so that reads
// are served at the loop's cost and writes at the goroutine transport's.
//
// The loop alone closes connections and changes its connection table;
// other goroutines ask it to through its task queue (an eventfd wakes it).

// errWouldBlock is the request reader's "no more input for now": the
// socket is drained; the loop waits for it to become readable again.
var errWouldBlock = errors.New("resp: no input ready")

// loopFlushAt is the reply backlog past which the loop writes before it
// reads more of a long pipeline.
const loopFlushAt = 64 << 10

// A goroutine that holds a connection whose writes wait keeps it while
// the client sends fewer than stickyReads batches in a row that could run
// on the loop, and waits for its input at most stickyIdle at a time.
const (
	stickyReads = 64
	stickyIdle  = 100 * time.Millisecond
)

// Connection states: which goroutine may touch the connection.
const (
	connOnLoop  int32 = iota // its loop, which has its fd in its epoll set
	connBusy                 // a goroutine running a batch that may wait
	connClosing              // nobody: the loop is about to close it
)

type netLoop struct {
	srv    *Server
	epfd   int
	wakefd int
	events []unix.EpollEvent
	// epfile is the epoll fd registered in Go's netpoller: the loop parks
	// as a goroutine while none of its connections is ready (park); without
	// it the loop blocks in epoll_wait. It is the gate (gatefd, see
	// openGate) when there is one, else the loop's epoll fd itself.
	epfile     *os.File
	gatefd     int
	gateOpen   bool
	gateEvents [1]unix.EpollEvent
	eprc       syscall.RawConn
	park       bool
	// deadline is the epoll file's read deadline (the next sweep).
	deadline time.Time
	// pollFn is l.poll, made once (a method value allocates); it leaves
	// its result in polled and pollErr.
	pollFn  func(fd uintptr) bool
	polled  int
	pollErr error

	mu     sync.Mutex
	tasks  []func()
	woken  bool
	closed bool

	// conns is the loop's connections by fd; only the loop touches it.
	conns map[int]*loopConn
	// deferred are the connections served in this pass whose replies
	// wait for their writes' sync (ackDeferred).
	deferred []*loopConn
	// assigned counts the sessions given to this loop and not yet closed.
	assigned atomic.Int64
	// handOffs counts the batches the loop handed to a goroutine.
	handOffs  atomic.Int64
	lastSweep time.Time
}

// loopConn is one connection served by a loop. Its fields belong to
// whoever its state names; mu serializes the hand-over back to the loop
// with the loop's closing of it.
type loopConn struct {
	loop  *netLoop
	fd    int
	sess  *session
	rd    *requestReader
	state atomic.Int32
	mu    sync.Mutex

	// drained: the last read returned less than it asked for, so the
	// socket holds nothing more until epoll says otherwise.
	drained bool
	// outOff is how much of the session's reply buffer was written;
	// wantOut means the loop waits for the socket to take the rest (and
	// reads nothing meanwhile), since outSince.
	outOff   int
	wantOut  bool
	outSince time.Time
	// closeAfterOut closes the connection once its replies are written
	// (QUIT, a protocol error, a closing server).
	closeAfterOut bool
	// lastActive is when the connection last finished a batch, for the
	// idle timeout.
	lastActive time.Time

	// While a goroutine holding the connection waits for its input (writes
	// that wait, see work): pf is a duplicate of fd registered in Go's
	// netpoller, prc its raw access, pfDeadline the wait's read deadline,
	// and waitedIdle whether the last wait ended without input. pf and
	// pfDeadline are guarded by mu (a shutdown wakes the waiter).
	pf         *os.File
	prc        syscall.RawConn
	pfDeadline time.Time
	waitedIdle bool
	// readFn is c.readWaited, made once (a method value allocates); it
	// leaves what it read in waitCmds and waitErr.
	readFn   func(fd uintptr) bool
	waitCmds []request
	waitErr  error
}

// startLoops starts the event loops, one per CPU; none when the
// configuration asks for the goroutine transport or epoll is unavailable.
func (s *Server) startLoops() {
	switch s.cfg.Transport {
	case TransportGoroutines:
		return
	case "":
		// In a cluster every command may wait for the leader: a goroutine
		// per connection. Where only writes wait (--sync always), the
		// loops serve reads and a connection's writes move it to a
		// goroutine that keeps it while they last (work).
		if s.loopRuns == loopRunsNothing {
			return
		}
	}
	n := s.cfg.Loops
	if n <= 0 {
		n = defaultLoops(s.loopRuns)
	}
	loops := make([]*netLoop, 0, n)
	for range n {
		l, err := newNetLoop(s)
		if err != nil {
			s.log.Warn("resp: no event loop; serving connections with a goroutine each", "err", err)
			for _, l := range loops {
				l.closeFDs()
			}
			return
		}
		loops = append(loops, l)
	}
	s.loops = loops
	for _, l := range loops {
		s.wg.Add(1)
		go l.run()
	}
}

func newNetLoop(s *Server) (*netLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, err
	}
	l := &netLoop{
		srv: s, epfd: epfd, wakefd: wakefd, gatefd: -1,
		events: make([]unix.EpollEvent, 256),
		conns:  make(map[int]*loopConn),
	}
	// The epoll fd is itself pollable: registered in Go's netpoller, the
	// loop parks as an ordinary goroutine while nothing is ready. Blocking
	// in epoll_wait instead would hold a thread in a system call, whose P
	// the runtime's monitor keeps taking back and handing on (measured
	// dearer: see docs/performance/resp.md). It is registered through a
	// gate (see openGate), so that its events wake the netpoller only
	// while the loop is parked.
	if err := unix.SetNonblock(epfd, true); err == nil {
		pollable := epfd
		if gate, err := newLoopGate(epfd); err == nil {
			l.gatefd, pollable = gate, gate
		} else {
			l.gatefd = -1
		}
		l.epfile = os.NewFile(uintptr(pollable), "resp-epoll")
		if rc, err := l.epfile.SyscallConn(); err == nil {
			l.eprc = rc
			l.park = true
			l.pollFn = l.poll
		}
	}
	return l, nil
}

// wait returns the next ready events: from a non-blocking epoll_wait,
// parking in Go's netpoller while there are none (or, without park, from
// a blocking one). Zero events: time to sweep.
func (l *netLoop) wait(timeout int, deadline time.Time) (int, error) {
	if !l.park {
		return unix.EpollWait(l.epfd, l.events, timeout)
	}
	if !deadline.Equal(l.deadline) {
		_ = l.epfile.SetReadDeadline(deadline)
		l.deadline = deadline
	}
	l.polled, l.pollErr = 0, nil
	if err := l.eprc.Read(l.pollFn); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, err
	}
	return l.polled, l.pollErr
}

// poll takes the events ready now; false (nothing ready) parks the loop
// in the netpoller until the epoll fd is readable, with the gate open.
func (l *netLoop) poll(uintptr) bool {
	if l.gateOpen {
		l.closeGate()
	}
	l.polled, l.pollErr = rawEpollPoll(l.epfd, l.events)
	if l.polled != 0 || (l.pollErr != nil && l.pollErr != unix.EINTR) {
		return true
	}
	if l.gatefd >= 0 {
		if err := l.openGate(); err != nil {
			l.pollErr = err
			return true
		}
	}
	return false
}

// The gate. Go's netpoller watches its file descriptors edge-triggered
// and wakes a thread for every edge, whether a goroutine waits for it or
// not. Registered there directly, the loop's epoll fd would wake a thread
// for each connection that becomes ready while the loop is busy serving
// others: the thread takes the idle P, finds nothing to run and sleeps
// again, some 26,000 times a second under --sync always on two CPUs,
// which cost a third of the server's CPU per request. So the netpoller
// watches a second epoll fd, the gate, whose only entry is the loop's
// epoll fd, one-shot: armed (openGate) just before the loop parks, fired
// by the first event, and disarmed (closeGate) when the loop runs again.
// While the loop runs, its events stay in its own epoll fd, which it reads
// itself, and wake nobody.

// newLoopGate makes the gate of epfd: an epoll fd watching epfd,
// disarmed.
func newLoopGate(epfd int) (int, error) {
	gate, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(epfd)}
	if err := unix.EpollCtl(gate, unix.EPOLL_CTL_ADD, epfd, &ev); err != nil {
		_ = unix.Close(gate)
		return -1, err
	}
	if err := unix.SetNonblock(gate, true); err != nil {
		_ = unix.Close(gate)
		return -1, err
	}
	return gate, nil
}

// openGate arms the gate: the next event of the loop's epoll fd, or one
// already there, makes the gate readable and wakes the parked loop.
func (l *netLoop) openGate() error {
	l.gateOpen = true
	return rawEpollCtl(l.gatefd, unix.EPOLL_CTL_MOD, l.epfd, unix.EPOLLIN|unix.EPOLLONESHOT)
}

// closeGate disarms the gate once the loop runs again. Reading the gate
// takes its fired entry off its ready list (and a one-shot entry read is
// disarmed). When it had not fired (the loop woke for its sweep), it is
// disarmed by hand and read once more, so that no entry that fired in
// between stays listed: a listed entry would keep the next openGate from
// signalling an epoll fd that is ready already.
func (l *netLoop) closeGate() {
	l.gateOpen = false
	if n, _ := rawEpollPoll(l.gatefd, l.gateEvents[:]); n > 0 {
		return
	}
	_ = rawEpollCtl(l.gatefd, unix.EPOLL_CTL_MOD, l.epfd, unix.EPOLLONESHOT)
	_, _ = rawEpollPoll(l.gatefd, l.gateEvents[:])
}

// adopt moves a newly accepted connection onto a loop: its socket is
// duplicated and the net.Conn closed (which takes the socket out of Go's
// netpoller). Called with s.mu held, after the session is registered;
// false leaves the connection to the goroutine transport.
func (s *Server) adopt(sess *session, nc net.Conn) bool {
	if len(s.loops) == 0 {
		return false
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(f uintptr) {
		fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || dupErr != nil {
		return false
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return false
	}
	_ = nc.Close()
	l := s.loops[uint64(sess.id)%uint64(len(s.loops))]
	c := &loopConn{loop: l, fd: fd, sess: sess}
	sess.conn = nil
	sess.guard.conn = nil
	sess.guard.src = c
	c.rd = newRequestReader(sess.guard)
	sess.onShutdown = func() {
		c.wake()
		l.post(func() { l.stopConn(c) })
	}
	l.assigned.Add(1)
	l.post(func() { l.register(c) })
	return true
}

// stopLoops lets the loops end once their connections are closed. Called
// with s.mu held, after every session was asked to shut down.
func (s *Server) stopLoops() {
	s.loopsStop.Store(true)
	for _, l := range s.loops {
		l.post(func() {})
	}
}

// post runs f on the loop.
func (l *netLoop) post(f func()) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.tasks = append(l.tasks, f)
	if !l.woken {
		// Under mu, so that the eventfd cannot be closed (and its number
		// reused) in between.
		l.woken = true
		one := [8]byte{1}
		_, _ = unix.Write(l.wakefd, one[:])
	}
	l.mu.Unlock()
}

func (l *netLoop) runTasks() {
	var b [8]byte
	_, _ = unix.Read(l.wakefd, b[:])
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = nil
	l.woken = false
	l.mu.Unlock()
	for _, f := range tasks {
		f()
	}
}

func (l *netLoop) run() {
	defer l.srv.wg.Done()
	sweepEvery := time.Second
	if idle := l.srv.cfg.IdleTimeout; idle > 0 {
		sweepEvery = min(sweepEvery, max(idle/4, 10*time.Millisecond))
	}
	timeout := int(sweepEvery / time.Millisecond)
	l.lastSweep = time.Now()
	for {
		n, err := l.wait(timeout, l.lastSweep.Add(sweepEvery))
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.srv.log.Error("resp: epoll_wait failed", "err", err)
			time.Sleep(10 * time.Millisecond)
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.wakefd {
				l.runTasks()
				continue
			}
			c := l.conns[fd]
			if c == nil || c.state.Load() != connOnLoop {
				continue
			}
			if c.wantOut {
				l.writable(c)
				continue
			}
			c.drained = false
			l.serve(c)
		}
		if len(l.deferred) > 0 {
			l.ackDeferred()
		}
		if now := time.Now(); now.Sub(l.lastSweep) >= sweepEvery {
			l.lastSweep = now
			l.sweep(now)
		}
		if l.srv.loopsStop.Load() && l.assigned.Load() == 0 {
			l.closeFDs()
			return
		}
	}
}

func (l *netLoop) closeFDs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	switch {
	case l.epfile == nil:
		_ = unix.Close(l.epfd)
	case l.gatefd >= 0:
		_ = l.epfile.Close() // the gate
		_ = unix.Close(l.epfd)
	default:
		_ = l.epfile.Close()
	}
	_ = unix.Close(l.wakefd)
}

// register adds a new connection to the loop.
func (l *netLoop) register(c *loopConn) {
	l.conns[c.fd] = c
	c.lastActive = time.Now()
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}); err != nil {
		l.srv.log.Warn("resp: cannot watch a connection", "client", c.sess.id, "err", err)
		l.close(c)
		return
	}
	if c.sess.stopping.Load() {
		l.close(c)
	}
}

// serve runs the connection's complete requests on the loop until its
// socket is drained, its replies back up, or a batch must run elsewhere;
// then writes the replies.
func (l *netLoop) serve(c *loopConn) {
	sess := c.sess
	for {
		cmds, err := c.rd.ReadCommands()
		if err == errWouldBlock {
			break
		}
		if err != nil {
			sess.readFailed(err)
			c.closeAfterOut = true
			break
		}
		class := l.srv.loopBatch(sess, cmds)
		if class != batchDeferred {
			// What runs next sees the session's own writes, and no
			// goroutine sends their replies before they are durable.
			sess.awaitDeferred()
		}
		if class == batchHandOff {
			l.handOff(c, cmds)
			return
		}
		sess.deferring, sess.onLoop = class == batchDeferred, true
		sess.runBatch(cmds)
		sess.deferring, sess.onLoop = false, false
		if sess.killed.Load() {
			// CLIENT KILL: closed without the replies still to send.
			l.close(c)
			return
		}
		if sess.quit || sess.stopping.Load() {
			c.closeAfterOut = true
			break
		}
		if len(sess.w.buf) >= loopFlushAt {
			sess.awaitDeferred()
			if !l.flush(c) {
				return
			}
		}
	}
	if sess.hasDeferred() {
		// Sent at the end of the pass, after one wait for the writes of
		// every session the pass served (ackDeferred).
		l.deferred = append(l.deferred, c)
		return
	}
	l.flushServed(c)
}

// flushServed writes the replies of a connection the loop served.
func (l *netLoop) flushServed(c *loopConn) {
	if l.flush(c) && l.srv.cfg.IdleTimeout > 0 {
		c.lastActive = time.Now()
	}
}

// ackDeferred ends a pass that ran writes which defer their
// acknowledgement (deferral.go): one wait for the newest of them, then the
// replies of every connection that waited for it.
func (l *netLoop) ackDeferred() {
	var newest uint64
	for _, c := range l.deferred {
		newest = max(newest, c.sess.deferral.Newest())
	}
	err := l.srv.store.AwaitCommit(newest)
	for i, c := range l.deferred {
		l.deferred[i] = nil
		if c.fd < 0 || c.state.Load() != connOnLoop || !c.sess.hasDeferred() {
			continue // closed, or already settled by stopConn
		}
		c.sess.settleDeferred(err)
		l.flushServed(c)
	}
	l.deferred = l.deferred[:0]
}

// flush writes the connection's replies; false when the connection is
// closed or waits for the socket to take the rest.
func (l *netLoop) flush(c *loopConn) bool {
	done, err := c.write()
	switch {
	case err != nil:
		l.close(c)
		return false
	case !done:
		if !c.wantOut {
			c.wantOut = true
			c.outSince = time.Now()
			l.watch(c, unix.EPOLLOUT)
		}
		return false
	}
	if c.wantOut {
		c.wantOut = false
		l.watch(c, unix.EPOLLIN)
	}
	if c.closeAfterOut {
		l.close(c)
		return false
	}
	return true
}

// writable continues a write the socket could not take at once, then
// serves the input that waited for it.
func (l *netLoop) writable(c *loopConn) {
	if l.flush(c) {
		c.drained = false
		l.serve(c)
	}
}

func (l *netLoop) watch(c *loopConn, events uint32) {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: events, Fd: int32(c.fd)}); err != nil {
		l.close(c)
	}
}

// handOff runs cmds, a batch that may wait, on a goroutine of its own,
// with the connection out of the epoll set until it comes back.
func (l *netLoop) handOff(c *loopConn, cmds []request) {
	c.state.Store(connBusy)
	l.handOffs.Add(1)
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	go c.work(cmds)
}

// work runs on its own goroutine: cmds, then whatever else the connection
// sent, until the socket is drained; then it writes the replies and gives
// the connection back to its loop. Where writes wait, it keeps the
// connection past the drained socket (see waitCommands) until the client
// sends stickyReads batches in a row the loop could run, or goes idle.
func (c *loopConn) work(cmds []request) {
	sess := c.sess
	srv := c.loop.srv
	sticky := srv.loopRuns == loopRunsReads || srv.loopRuns == loopDefersWrites
	onLoop := 0 // batches in a row that the loop could have run
	for {
		sess.runBatch(cmds)
		if sess.killed.Load() {
			c.dropPoller()
			c.giveBack(true)
			return
		}
		if sess.quit || sess.stopping.Load() {
			c.closeAfterOut = true
			break
		}
		if len(sess.w.buf) >= loopFlushAt {
			if done, err := c.write(); err != nil {
				c.dropPoller()
				c.giveBack(true)
				return
			} else if !done {
				break
			}
		}
		var err error
		cmds, err = c.rd.ReadCommands()
		if err == errWouldBlock {
			if !sticky || onLoop >= stickyReads {
				break
			}
			done, werr := c.write()
			if werr != nil {
				c.dropPoller()
				c.giveBack(true)
				return
			}
			if !done {
				break // the loop waits for the socket to take the rest
			}
			if cmds, err = c.waitCommands(); err == errWouldBlock {
				break // idle, or the session is stopping
			}
		}
		if err != nil {
			sess.readFailed(err)
			c.closeAfterOut = true
			break
		}
		if sticky {
			if srv.loopBatch(sess, cmds) != batchHandOff {
				onLoop++
			} else {
				onLoop = 0
			}
		}
	}
	c.dropPoller()
	done, err := c.write()
	c.giveBack(err != nil || (done && c.closeAfterOut))
}

// waitCommands waits, in Go's netpoller, up to stickyIdle for the
// connection's next complete requests, and reads them; errWouldBlock when
// none came in time, the session is stopping, or the socket cannot be
// polled (the caller then gives the connection back to its loop).
func (c *loopConn) waitCommands() ([]request, error) {
	c.mu.Lock()
	if c.sess.stopping.Load() || c.sess.killed.Load() {
		c.mu.Unlock()
		return nil, errWouldBlock
	}
	if c.pf == nil {
		// A duplicate of the socket, so that closing it (dropPoller)
		// leaves the loop's descriptor open.
		fd, err := unix.FcntlInt(uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			c.mu.Unlock()
			return nil, errWouldBlock
		}
		// The descriptor is non-blocking, so os.NewFile registers it in
		// the netpoller.
		pf := os.NewFile(uintptr(fd), "resp-conn")
		prc, err := pf.SyscallConn()
		if err != nil {
			_ = pf.Close()
			c.mu.Unlock()
			return nil, errWouldBlock
		}
		c.pf, c.prc, c.pfDeadline = pf, prc, time.Time{}
	}
	// Move the deadline only when half of the wait is used up: a timer
	// reset per request would cost more than the wait itself.
	if now := time.Now(); c.pfDeadline.Sub(now) < stickyIdle/2 {
		c.pfDeadline = now.Add(stickyIdle)
		if err := c.pf.SetReadDeadline(c.pfDeadline); err != nil {
			c.mu.Unlock()
			return nil, errWouldBlock
		}
	}
	prc := c.prc
	c.mu.Unlock()
	if c.readFn == nil {
		c.readFn = c.readWaited
	}
	c.waitCmds, c.waitErr = nil, nil
	if err := prc.Read(c.readFn); err != nil {
		c.waitedIdle = errors.Is(err, os.ErrDeadlineExceeded)
		return nil, errWouldBlock
	}
	cmds := c.waitCmds
	c.waitCmds = nil
	return cmds, c.waitErr
}

// readWaited is waitCommands' read; false when the socket has nothing
// (wait for it). It reads even on its first call, when the socket was just
// found drained: the netpoller forgets the input that arrived before the
// wait began.
func (c *loopConn) readWaited(uintptr) bool {
	c.drained = false
	c.waitCmds, c.waitErr = c.rd.ReadCommands()
	return c.waitErr != errWouldBlock
}

// wake ends a wait of waitCommands at once (the session is stopping).
func (c *loopConn) wake() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pf != nil {
		c.pfDeadline = time.Now()
		_ = c.pf.SetReadDeadline(c.pfDeadline)
	}
}

// dropPoller takes the connection out of Go's netpoller (closing the
// duplicate descriptor waitCommands made), before the connection goes
// back to its loop.
func (c *loopConn) dropPoller() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pf != nil {
		_ = c.pf.Close()
		c.pf, c.prc = nil, nil
	}
}

// giveBack returns a busy connection to its loop: to be closed, or
// watched again, for input or for the rest of its replies.
func (c *loopConn) giveBack(closeIt bool) {
	l := c.loop
	c.mu.Lock()
	defer c.mu.Unlock()
	sess := c.sess
	if closeIt || sess.killed.Load() {
		c.state.Store(connClosing)
		l.post(func() { l.close(c) })
		return
	}
	if sess.stopping.Load() {
		c.closeAfterOut = true
	}
	events := uint32(unix.EPOLLIN)
	if c.outOff < len(sess.w.buf) {
		events = unix.EPOLLOUT
		c.wantOut = true
		c.outSince = time.Now()
	} else if c.closeAfterOut {
		c.state.Store(connClosing)
		l.post(func() { l.close(c) })
		return
	}
	c.lastActive = time.Now()
	if c.waitedIdle {
		// The client has been idle for the wait that just ended.
		c.lastActive = c.lastActive.Add(-stickyIdle)
		c.waitedIdle = false
	}
	c.state.Store(connOnLoop)
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: events, Fd: int32(c.fd)}); err != nil {
		c.state.Store(connClosing)
		l.post(func() { l.close(c) })
	}
}

// stopConn closes a connection for CLIENT KILL or a closing server: at
// once when killed, after one last try to send its replies otherwise. A
// busy connection is closed by its goroutine when its batch ends.
func (l *netLoop) stopConn(c *loopConn) {
	if c.state.Load() != connOnLoop {
		return
	}
	if !c.sess.killed.Load() {
		c.sess.awaitDeferred()
		_, _ = c.write()
	}
	l.close(c)
}

// close closes the connection and ends its session, unless a goroutine
// is running a batch of it (that goroutine asks again when done).
func (l *netLoop) close(c *loopConn) {
	c.mu.Lock()
	if c.fd < 0 || c.state.Load() == connBusy {
		c.mu.Unlock()
		return
	}
	c.state.Store(connClosing)
	fd := c.fd
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	_ = unix.Close(fd)
	if l.conns[fd] == c {
		delete(l.conns, fd)
	}
	c.fd = -1
	c.mu.Unlock()
	l.assigned.Add(-1)
	l.srv.sessionClosed(c.sess)
}

// sweep closes the connections idle past the idle timeout and those whose
// client stopped reading its replies for writeTimeout.
func (l *netLoop) sweep(now time.Time) {
	idle := l.srv.cfg.IdleTimeout
	for _, c := range l.conns {
		if c.state.Load() != connOnLoop {
			continue
		}
		if c.wantOut {
			if now.Sub(c.outSince) > writeTimeout {
				l.close(c)
			}
			continue
		}
		if idle > 0 && now.Sub(c.lastActive) > idle {
			l.close(c)
		}
	}
}

// Read is the request reader's source: the non-blocking socket.
func (c *loopConn) Read(p []byte) (int, error) {
	if c.drained {
		return 0, errWouldBlock
	}
	for {
		n, err := rawRead(c.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.drained = true
			return 0, errWouldBlock
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		if n < len(p) {
			c.drained = true
		}
		return n, nil
	}
}

// write sends the session's pending replies without blocking; done when
// all of them left.
func (c *loopConn) write() (done bool, err error) {
	w := &c.sess.w
	for c.outOff < len(w.buf) {
		n, err := rawWrite(c.fd, w.buf[c.outOff:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, nil
		case err != nil:
			return false, err
		}
		c.outOff += n
	}
	c.outOff = 0
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not keep a large reply's buffer for an idle client
	} else {
		w.buf = w.buf[:0]
	}
	return true, nil
}
