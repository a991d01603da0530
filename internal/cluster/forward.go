package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// The cluster RPC carries what a node cannot do alone to the leader:
// writes (proposals), read indexes, and membership changes. It runs on the
// raft address (see transport.go). A connection opens with rpcMagic, then
// carries one request and its response at a time, each a frame:
//
//	uint32  payload length (big endian), at most maxFrame
//	payload request: 1 byte method, then its body
//	        response: 1 byte code (codeOK or an error code), then the
//	        body (codeOK) or the error message
//
// A follower keeps a small pool of connections per leader address.
const (
	rpcPropose   = 1 // body: a proposal (command.go); answer: empty
	rpcReadIndex = 2 // body: 1 byte verify (1) or not (0); answer: 8-byte index
	rpcJoin      = 3 // body: id, address (strings); answer: empty
	rpcRemove    = 4 // body: id; answer: empty
	rpcTransfer  = 5 // body: id (may be empty: any voter); answer: empty
	rpcStatus    = 6 // body: empty; answer: this node's progress (nodeProgress)
	// rpcProposeBatch (7) carries many proposals: forward_batch.go.

	maxFrame = 1<<30 + 1<<20
	// poolSize is how many idle connections to one leader a node keeps.
	poolSize = 16
)

// Answer codes. The error codes carry the storage and cluster sentinels
// across the wire so errors.Is works on the forwarding node.
const (
	codeOK = iota
	codeConflict
	codeInvalidArgument
	codeInvalidKey
	codeValueTooLarge
	codeNotLeader
	codeNoLeader
	codeUnknownOutcome
	codeStopped
	codeNotVoter
	codeClosed
	codeOther
)

// errNotLeader is the answer of a node asked to do a leader's work after it
// stopped leading (or before it led): the request was not started, and the
// caller retries with the current leader.
var errNotLeader = errors.New("this node is not the leader")

var codeErrors = []struct {
	code byte
	err  error
}{
	{codeConflict, storage.ErrConflict},
	{codeInvalidArgument, storage.ErrInvalidArgument},
	{codeInvalidKey, storage.ErrInvalidKey},
	{codeValueTooLarge, storage.ErrValueTooLarge},
	{codeNotLeader, errNotLeader},
	{codeNoLeader, ErrNoLeader},
	{codeUnknownOutcome, ErrUnknownOutcome},
	{codeStopped, ErrStopped},
	{codeNotVoter, ErrNotVoter},
	{codeClosed, storage.ErrClosed},
}

func errorCode(err error) byte {
	for _, c := range codeErrors {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return codeOther
}

// remoteError is an error answered by another node.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func codeError(code byte, msg string) error {
	for _, c := range codeErrors {
		if c.code == code {
			return &remoteError{msg: msg, sentinel: c.err}
		}
	}
	return &remoteError{msg: msg}
}

func writeFrame(w *bufio.Writer, kind byte, body []byte) error {
	var h [5]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(body)+1))
	h[4] = kind
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

func readFrame(r *bufio.Reader) (kind byte, body []byte, err error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || n > maxFrame {
		return 0, nil, fmt.Errorf("cluster rpc: frame of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

// rpcConn is one pooled client connection.
type rpcConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// idle reports whether a pooled connection is still open and silent. A
// request written to a connection the other side has closed (it restarted,
// or a proxy cut it) would look sent, and its write's outcome unknown,
// though it never arrived: such connections are dropped before use.
func (rc *rpcConn) idle() bool {
	if rc.r.Buffered() > 0 {
		return false
	}
	_ = rc.c.SetReadDeadline(time.Now())
	_, err := rc.r.Peek(1)
	_ = rc.c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// takeIdle returns a pooled connection that is still open, or nil.
func takeIdle(p chan *rpcConn) *rpcConn {
	for {
		select {
		case rc := <-p:
			if rc.idle() {
				return rc
			}
			_ = rc.c.Close()
		default:
			return nil
		}
	}
}

// forwarder is the client side: pools of connections per address.
type forwarder struct {
	dialer *net.Dialer
	mu     sync.Mutex
	pools  map[string]chan *rpcConn
	closed bool
}

func newForwarder() *forwarder {
	return &forwarder{dialer: &net.Dialer{Timeout: 2 * time.Second}, pools: make(map[string]chan *rpcConn)}
}

func (f *forwarder) pool(addr string) chan *rpcConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pools[addr]
	if !ok {
		p = make(chan *rpcConn, poolSize)
		f.pools[addr] = p
	}
	return p
}

// call sends one request to addr and returns its answer. sent says whether
// the request may have reached the other node: when false, the call had no
// effect and may be retried whatever it was.
func (f *forwarder) call(ctx context.Context, addr string, method byte, body []byte) (answer []byte, sent bool, err error) {
	p := f.pool(addr)
	rc := takeIdle(p)
	if rc == nil {
		c, err := f.dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, false, err
		}
		if _, err := c.Write([]byte{rpcMagic}); err != nil {
			_ = c.Close()
			return nil, false, err
		}
		rc = &rpcConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultApplyTimeout)
	}
	_ = rc.c.SetDeadline(deadline)
	if err := writeFrame(rc.w, method, body); err != nil {
		_ = rc.c.Close()
		// A pooled connection the other side closed fails here without
		// having delivered anything.
		return nil, false, err
	}
	code, msg, err := readFrame(rc.r)
	if err != nil {
		_ = rc.c.Close()
		return nil, true, err
	}
	_ = rc.c.SetDeadline(time.Time{})
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		_ = rc.c.Close()
	} else {
		select {
		case p <- rc:
		default:
			_ = rc.c.Close()
		}
	}
	if code != codeOK {
		return nil, true, codeError(code, string(msg))
	}
	return msg, true, nil
}

// close drops every idle connection.
func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, p := range f.pools {
		for {
			select {
			case rc := <-p:
				_ = rc.c.Close()
				continue
			default:
			}
			break
		}
	}
}

// serveRPC answers one client connection's requests until it closes.
func (e *Engine) serveRPC(c net.Conn) {
	defer c.Close()
	if !e.trackRPC(c, true) {
		return
	}
	defer e.trackRPC(c, false)
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		method, body, err := readFrame(r)
		if err != nil {
			return
		}
		answer, err := e.handleRPC(method, body)
		if h := dropAnswerHook.Load(); h != nil && (*h)(method) {
			return // a test cuts the connection before the answer
		}
		if err != nil {
			err = writeFrame(w, errorCode(err), []byte(err.Error()))
		} else {
			err = writeFrame(w, codeOK, answer)
		}
		if err != nil {
			return
		}
	}
}

func (e *Engine) handleRPC(method byte, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ApplyTimeout)
	defer cancel()
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	d := decoder{b: body}
	switch method {
	case rpcPropose:
		c, err := decodeCommand(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", storage.ErrInvalidArgument, err)
		}
		if c.kind != kindProposal {
			return nil, fmt.Errorf("%w: forwarded command is not a proposal", storage.ErrInvalidArgument)
		}
		return nil, e.applyLocal(c)
	case rpcProposeBatch:
		return e.handleProposeBatch(body)
	case rpcReadIndex:
		var idx uint64
		var err error
		if d.byte() == 1 {
			idx, err = e.leaderReads.index(ctx)
		} else {
			idx, err = e.leaderReadIndex(ctx, false)
		}
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.AppendUint64(nil, idx), nil
	// Membership changes sent to any member reach the leader: a node
	// joining names whichever member it knows.
	case rpcJoin:
		id, addr := d.string(), d.string()
		if d.err != nil {
			return nil, fmt.Errorf("%w: join request: %w", storage.ErrInvalidArgument, d.err)
		}
		return nil, e.Join(ctx, id, addr)
	case rpcRemove:
		return nil, e.Remove(ctx, d.string())
	case rpcTransfer:
		return nil, e.TransferLeadership(ctx, d.string())
	case rpcStatus:
		return e.progress().encode(), nil
	default:
		return nil, fmt.Errorf("%w: unknown cluster rpc method %d", storage.ErrInvalidArgument, method)
	}
}

// toLeader runs a leader's task here when this node leads, else sends it
// to the leader, retrying while no leader is known or the one asked has
// stopped leading, until ctx ends. idempotent says the request may be sent
// again after its answer was lost.
func (e *Engine) toLeader(ctx context.Context, method byte, body []byte, idempotent bool, local func() ([]byte, error)) ([]byte, error) {
	backoff := 5 * time.Millisecond
	var last error
	for {
		if err := e.checkOpen(); err != nil {
			return nil, err
		}
		if e.isLeader() {
			answer, err := local()
			if !errors.Is(err, errNotLeader) {
				return answer, err
			}
			last = err
		} else if addr, _ := e.raft.LeaderWithID(); addr != "" {
			answer, sent, err := e.fwd.call(ctx, string(addr), method, body)
			switch {
			case err == nil:
				return answer, nil
			case errors.Is(err, errNotLeader):
				last = err
			case sent && !idempotent && !errors.As(err, new(*remoteError)):
				return nil, fmt.Errorf("%w: forwarded to %s: %w", ErrUnknownOutcome, addr, err)
			case errors.As(err, new(*remoteError)):
				return nil, err
			default:
				last = err
			}
		} else {
			last = errors.New("no leader is known")
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w (last: %v)", ErrNoLeader, ctx.Err(), last)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// trackRPC registers (add) or forgets a served connection; it refuses new
// ones once the node is closing, so teardown can close them all.
func (e *Engine) trackRPC(c net.Conn, add bool) bool {
	e.rpcMu.Lock()
	defer e.rpcMu.Unlock()
	if !add {
		delete(e.rpcServed, c)
		e.rpcConns.Done()
		return true
	}
	if e.rpcClosing {
		return false
	}
	if e.rpcServed == nil {
		e.rpcServed = make(map[net.Conn]struct{})
	}
	e.rpcServed[c] = struct{}{}
	e.rpcConns.Add(1)
	return true
}

// closeRPC closes every served connection and waits for their handlers.
func (e *Engine) closeRPC() {
	e.rpcMu.Lock()
	e.rpcClosing = true
	for c := range e.rpcServed {
		_ = c.Close()
	}
	e.rpcMu.Unlock()
	e.rpcConns.Wait()
}
