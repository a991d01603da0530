package resp

// Writes acknowledged at the end of an event loop's pass (--sync always).
//
// A write under --sync always is acknowledged only once its log record is
// synced. Run on a goroutine per connection, each waiting writer costs a
// park, a wake-up and the hand-off of its connection; on this 2-vCPU guest
// that cost twice the CPU of the write itself (docs/performance/resp.md).
// Redis's answer is to run the writes on its event loop and sync once
// before it sends the replies of a pass. The loops do the same here: a
// batch made only of writes that can defer (blind writes such as SET and
// MSET, and engine updates such as INCR and APPEND: flagDefers) runs on
// the loop with the session's deferral in its context
// (storage.CommitDeferral). The engine returns once each write is logged
// and applied, leaving its ticket; the replies wait in the session's
// buffer. At the end of the pass the loop waits once for the newest ticket
// of every session it served (one sync, which the loop's thread leads, or
// none when an earlier sync covered them), then sends their replies.
//
// Until then a deferred write is visible to nobody but later updates of
// its key. So that a connection sees its own writes, a session with
// deferred writes waits for them before it runs anything else (a read, a
// hand-off to a goroutine, a flush of a long reply backlog). Should a
// sync fail, each deferred write's reply is replaced by its own outcome,
// the error it would have returned had it waited (CommitOutcome).
//
// Deferred writes are timed until they are applied, not until their sync:
// INFO commandstats and the latency histograms show the command's work, as
// Redis's do (its fsync runs in the event loop, outside every command).

// deferredReply is the reply of a write whose acknowledgement waits for
// ticket: bytes [at, end) of the session's reply buffer.
type deferredReply struct {
	cmd     *command
	at, end int
	ticket  uint64
}

// noteDeferred records the reply of a command that just ran, if its write
// deferred its acknowledgement.
func (sess *session) noteDeferred(cmd *command, at, end int) {
	if t := sess.deferral.TakeLast(); t != 0 {
		sess.deferred = append(sess.deferred, deferredReply{cmd: cmd, at: at, end: end, ticket: t})
	}
}

// hasDeferred reports whether replies of the session wait for a sync.
func (sess *session) hasDeferred() bool { return sess.deferral.Newest() != 0 }

// awaitDeferred waits until the session's deferred writes are durable and
// visible; their replies may then be sent. A failed sync turns the replies
// of the writes it lost into errors.
func (sess *session) awaitDeferred() {
	if !sess.hasDeferred() {
		return
	}
	sess.settleDeferred(sess.srv.store.AwaitCommit(sess.deferral.Newest()))
}

// settleDeferred ends the session's deferral once AwaitCommit returned
// err for a ticket at least as new as its newest.
func (sess *session) settleDeferred(err error) {
	if err != nil {
		sess.failDeferred()
	}
	clear(sess.deferred)
	sess.deferred = sess.deferred[:0]
	sess.deferral.Reset()
}

// failDeferred replaces the reply of every deferred write whose commit
// failed with its error (a reply that already is one stays).
func (sess *session) failDeferred() {
	srv := sess.srv
	buf := sess.w.buf
	out := replyWriter{proto: sess.w.proto, buf: make([]byte, 0, len(buf)+64)}
	prev := 0
	var ticket uint64
	var outcome error
	for _, d := range sess.deferred {
		out.buf = append(out.buf, buf[prev:d.at]...)
		prev = d.end
		if d.ticket != ticket {
			ticket, outcome = d.ticket, srv.store.CommitOutcome(d.ticket)
		}
		if outcome == nil || (d.end > d.at && buf[d.at] == '-') {
			out.buf = append(out.buf, buf[d.at:d.end]...)
			continue
		}
		out.err(errorReply(outcome))
		srv.statsOf(d.cmd).failed.Add(1)
	}
	out.buf = append(out.buf, buf[prev:]...)
	sess.w.buf = out.buf
}
