package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// Writes a follower takes travel to the leader in batches. Every proposal
// waiting to be forwarded to one leader address joins a queue; up to
// forwardRounds senders per address each take whatever the queue holds (up
// to maxForwardBatch proposals, maxForwardBatchBytes bytes), send it as one
// rpcProposeBatch, and take the next batch when the answer is back. A
// proposal that finds a sender free leaves at once; while all are busy,
// the next batch gathers, so a busy follower sends about one RPC per
// sender and leader round trip instead of one per write. The leader logs
// every proposal of a batch as its own raft entry, in one go, so raft
// appends them together and the fsm applies them in one engine commit;
// each proposal keeps its own answer.
//
// rpcProposeBatch body:   uvarint n, then n times: uvarint length, proposal
// rpcProposeBatch answer: n times: 1 byte code, uvarint length, message
//
// A leader that does not know the method answers an invalid-argument error
// without applying anything; the follower then forwards one proposal per
// RPC to that address.
const (
	rpcProposeBatch = 7

	maxForwardBatch      = 256
	maxForwardBatchBytes = 4 << 20
)

// forwardRounds is how many batches to one leader may be in flight at
// once. With one, a write that arrived just after a send waited a whole
// round trip before it left; four kept forwarded writes as fast as writes
// sent to the leader itself (docs/performance/cluster.md).
const forwardRounds = 4

// errBatchUnsupported is answered to the proposals of a batch sent to a
// leader that does not know rpcProposeBatch: nothing was applied, and the
// caller forwards the proposal alone.
var errBatchUnsupported = errors.New("the leader does not take batched proposals")

// forwardResult is a forwarded proposal's outcome. sent says whether it may
// have reached the leader (as forwarder.call's).
type forwardResult struct {
	err  error
	sent bool
}

// pendingProposal is a proposal waiting in a batch queue.
type pendingProposal struct {
	body     []byte
	deadline time.Time
	done     chan forwardResult // buffered: the sender never blocks
}

// proposalBatcher holds the batch queues, one per leader address.
type proposalBatcher struct {
	fwd *forwarder
	// batches and proposals count the batch RPCs sent and the proposals
	// they carried.
	batches, proposals atomic.Uint64

	mu     sync.Mutex
	queues map[string]*proposalQueue
}

// proposalQueue is one leader address's queue and its senders' state.
type proposalQueue struct {
	addr    string
	pending []*pendingProposal
	senders int // running senders, at most forwardRounds
	// single is set once the address answered that it does not take
	// batches: its proposals go one per RPC from then on.
	single bool
}

func newProposalBatcher(fwd *forwarder) *proposalBatcher {
	return &proposalBatcher{fwd: fwd, queues: make(map[string]*proposalQueue)}
}

// submit forwards one proposal to the leader at addr through its batch
// queue and returns the leader's answer for it.
func (b *proposalBatcher) submit(ctx context.Context, addr string, body []byte) forwardResult {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultApplyTimeout)
	}
	p := &pendingProposal{body: body, deadline: deadline, done: make(chan forwardResult, 1)}
	b.mu.Lock()
	q := b.queues[addr]
	if q == nil {
		q = &proposalQueue{addr: addr}
		b.queues[addr] = q
	}
	if q.single {
		b.mu.Unlock()
		return b.callSingle(ctx, addr, body)
	}
	q.pending = append(q.pending, p)
	if q.senders < forwardRounds {
		q.senders++
		go b.send(q)
	}
	b.mu.Unlock()

	select {
	case r := <-p.done:
		if errors.Is(r.err, errBatchUnsupported) {
			return b.callSingle(ctx, addr, body)
		}
		return r
	case <-ctx.Done():
		// Still queued: it never left, so the caller may give up cleanly.
		b.mu.Lock()
		for i, w := range q.pending {
			if w == p {
				q.pending = append(q.pending[:i], q.pending[i+1:]...)
				b.mu.Unlock()
				return forwardResult{err: ctx.Err()}
			}
		}
		b.mu.Unlock()
		// In a batch on its way: its outcome is not known here.
		return forwardResult{err: ctx.Err(), sent: true}
	}
}

func (b *proposalBatcher) callSingle(ctx context.Context, addr string, body []byte) forwardResult {
	_, sent, err := b.fwd.call(ctx, addr, rpcPropose, body)
	return forwardResult{err: err, sent: sent}
}

// send is q's sender: it sends batches while the queue has proposals.
func (b *proposalBatcher) send(q *proposalQueue) {
	for {
		b.mu.Lock()
		batch := takeBatch(&q.pending)
		if len(batch) == 0 {
			q.senders--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		results := b.sendBatch(q.addr, batch)
		if errors.Is(results[0].err, errBatchUnsupported) {
			b.mu.Lock()
			q.single = true
			b.mu.Unlock()
		}
		for i, p := range batch {
			p.done <- results[i]
		}
	}
}

// takeBatch removes the next batch from the head of pending: at most
// maxForwardBatch proposals and maxForwardBatchBytes bytes, but at least
// one proposal whatever its size.
func takeBatch(pending *[]*pendingProposal) []*pendingProposal {
	q := *pending
	n, size := 0, 0
	for n < len(q) && n < maxForwardBatch {
		if n > 0 && size+len(q[n].body) > maxForwardBatchBytes {
			break
		}
		size += len(q[n].body)
		n++
	}
	batch := make([]*pendingProposal, n)
	copy(batch, q[:n])
	rest := copy(q, q[n:])
	clear(q[rest:])
	*pending = q[:rest]
	return batch
}

// sendBatch sends one batch and returns each proposal's result.
func (b *proposalBatcher) sendBatch(addr string, batch []*pendingProposal) []forwardResult {
	deadline := batch[0].deadline
	size := binary.MaxVarintLen64
	for _, p := range batch {
		if p.deadline.After(deadline) {
			deadline = p.deadline
		}
		size += binary.MaxVarintLen64 + len(p.body)
	}
	body := make([]byte, 0, size)
	body = binary.AppendUvarint(body, uint64(len(batch)))
	for _, p := range batch {
		body = binary.AppendUvarint(body, uint64(len(p.body)))
		body = append(body, p.body...)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	b.batches.Add(1)
	b.proposals.Add(uint64(len(batch)))
	answer, sent, err := b.fwd.call(ctx, addr, rpcProposeBatch, body)
	results := make([]forwardResult, len(batch))
	if err == nil {
		err = decodeBatchAnswer(answer, results)
		if err != nil {
			err = fmt.Errorf("cluster rpc: batch answer from %s: %w", addr, err)
		}
	} else if isUnknownMethod(err) {
		err = errBatchUnsupported
		sent = false
	}
	if err != nil {
		for i := range results {
			results[i] = forwardResult{err: err, sent: sent}
		}
	}
	return results
}

// isUnknownMethod says whether err is a leader's refusal of a method it
// does not know (an older version), which applied nothing.
func isUnknownMethod(err error) bool {
	var re *remoteError
	return errors.As(err, &re) && errors.Is(err, storage.ErrInvalidArgument) &&
		strings.Contains(re.msg, "unknown cluster rpc method")
}

func decodeBatchAnswer(answer []byte, results []forwardResult) error {
	d := decoder{b: answer}
	for i := range results {
		code := d.byte()
		msg := d.string()
		if d.err != nil {
			return d.err
		}
		results[i].sent = true
		if code != codeOK {
			results[i].err = codeError(code, msg)
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d bytes after the last answer", len(d.b))
	}
	return nil
}

// handleProposeBatch is the leader's side of rpcProposeBatch: every
// proposal is stamped and handed to raft before the first answer is
// awaited, so raft logs them in one append and the fsm applies them in one
// engine commit. Each proposal is answered on its own.
func (e *Engine) handleProposeBatch(body []byte) ([]byte, error) {
	d := decoder{b: body}
	n := d.uvarint()
	if d.err != nil || n == 0 || n > maxForwardBatch {
		return nil, fmt.Errorf("%w: a batch of %d proposals (1..%d)", storage.ErrInvalidArgument, n, maxForwardBatch)
	}
	futures := make([]raft.ApplyFuture, n)
	errs := make([]error, n)
	for i := range futures {
		raw := d.bytes()
		if d.err != nil {
			return nil, fmt.Errorf("%w: proposal %d of a batch: %w", storage.ErrInvalidArgument, i, d.err)
		}
		c, err := decodeCommand(raw)
		if err == nil && c.kind != kindProposal {
			err = errors.New("forwarded command is not a proposal")
		}
		if err != nil {
			errs[i] = fmt.Errorf("%w: %w", storage.ErrInvalidArgument, err)
			continue
		}
		futures[i], errs[i] = e.startApply(c)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last proposal of a batch", storage.ErrInvalidArgument, len(d.b))
	}
	var out []byte
	for i, f := range futures {
		err := errs[i]
		if f != nil {
			err = applyOutcome(f)
		}
		if err == nil {
			out = append(out, codeOK, 0)
			continue
		}
		msg := err.Error()
		out = append(out, errorCode(err))
		out = binary.AppendUvarint(out, uint64(len(msg)))
		out = append(out, msg...)
	}
	return out, nil
}

// startApply stamps a proposal with this node's clock and hands the entry
// to raft, if this node leads; applyOutcome waits for its answer.
func (e *Engine) startApply(c command) (raft.ApplyFuture, error) {
	if !e.isLeader() {
		return nil, errNotLeader
	}
	entry := c.stamp(time.Now())
	return e.raft.Apply(entry.encode(), e.cfg.ApplyTimeout), nil
}

// applyOutcome is a logged entry's answer: the fsm's, or errNotLeader when
// raft did not log it (the caller may retry elsewhere), or
// ErrUnknownOutcome when it was logged but its fate is not known.
func applyOutcome(f raft.ApplyFuture) error {
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
			return fmt.Errorf("%w: %v", errNotLeader, err)
		default:
			return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		}
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// proposeVia replicates a proposal: applied here when this node leads,
// else forwarded to the leader in a batch (see proposalBatcher), retrying
// while no leader is known or the node asked has stopped leading, until
// ctx ends. A proposal that may have reached a leader whose answer was
// lost is not retried: it returns ErrUnknownOutcome.
func (e *Engine) proposeVia(ctx context.Context, c command) error {
	var body []byte
	backoff := 5 * time.Millisecond
	var last error
	for {
		if err := e.checkOpen(); err != nil {
			return err
		}
		if e.isLeader() {
			err := e.applyLocal(c)
			if !errors.Is(err, errNotLeader) {
				return err
			}
			last = err
		} else if addr, _ := e.raft.LeaderWithID(); addr != "" {
			if body == nil {
				body = c.encode()
			}
			r := e.batcher.submit(ctx, string(addr), body)
			var remote *remoteError
			switch {
			case r.err == nil:
				return nil
			case errors.Is(r.err, errNotLeader):
				last = r.err
			case errors.As(r.err, &remote):
				return r.err
			case r.sent:
				return fmt.Errorf("%w: forwarded to %s: %w", ErrUnknownOutcome, addr, r.err)
			default:
				last = r.err
			}
		} else {
			last = errors.New("no leader is known")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w (last: %v)", ErrNoLeader, ctx.Err(), last)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// bytes reads a length-prefixed field without copying it.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errShortCommand)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
