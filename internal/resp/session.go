package resp

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/internal/telemetry"
	"github.com/mantisdb/mantisdb/storage"
)

// errStopping ends a session's read loop when the server closes.
var errStopping = errors.New("server closing")

// session is one client connection: its protocol version, auth, MULTI
// queue and WATCH set. Only its own goroutine touches those; the info
// fields CLIENT LIST shows are guarded by mu.
type session struct {
	srv *Server
	id  int64
	// conn is the connection of the goroutine transport; nil when an
	// event loop serves the session (netloop_linux.go).
	conn net.Conn
	// raddr and laddr are the client's and the server's addresses.
	raddr, laddr string
	// onShutdown, set by the event loop serving the session, asks the
	// loop to close the connection once no command of it is running.
	onShutdown func()
	guard      *requestGuard
	created    time.Time
	stopping   atomic.Bool
	killed     atomic.Bool

	w      replyWriter
	authed bool
	multi  bool
	// queued holds the commands of an open MULTI; dirty records an error
	// while queueing, which makes EXEC answer EXECABORT.
	queued []queuedCommand
	dirty  bool
	watch  *kv.Watch
	quit   bool
	// last is the last command resolved, published to lastCmd by
	// publishInfo; pipe is the state of the pipeline being run.
	last *command
	pipe pipeline
	// While deferring (an event loop runs a batch of writes that defer
	// their acknowledgement, deferral.go), writes run with deferCtx, which
	// carries deferral; deferred lists the replies that wait for it.
	deferring bool
	// onLoop: an event loop runs the batch (it holds no command that
	// waits, so a pipeline needs no concurrent waves).
	onLoop   bool
	deferral storage.CommitDeferral
	// lat holds the dashboard figures of the batch being run.
	lat      telemetry.LatencyBatch
	deferCtx context.Context
	deferred []deferredReply
	// own is the call the session's commands run as (takeCall); ownBusy
	// while one runs.
	own     call
	ownBusy bool
	// pairs is MSET's slice of keys and values, reused (emptied).
	pairs []string

	mu      sync.Mutex
	name    string
	libName string
	libVer  string
	lastCmd string
	active  time.Time
	// Copies of the session's own state for other sessions' CLIENT LIST.
	infoMulti, infoWatch, infoProto int
}

type queuedCommand struct {
	cmd  *command
	args [][]byte
}

func newSession(srv *Server, nc net.Conn, id int64) *session {
	now := time.Now()
	sess := &session{
		srv:       srv,
		id:        id,
		conn:      nc,
		raddr:     nc.RemoteAddr().String(),
		laddr:     nc.LocalAddr().String(),
		created:   now,
		active:    now,
		w:         replyWriter{proto: 2},
		infoMulti: -1,
		infoProto: 2,
		authed:    srv.cfg.AuthToken == "",
		watch:     srv.store.NewWatch(),
	}
	sess.pipe.sess = sess
	sess.deferCtx = storage.WithCommitDeferral(context.Background(), &sess.deferral)
	sess.guard = &requestGuard{
		conn: nc, idle: srv.cfg.IdleTimeout, stopping: &sess.stopping,
		maxBulk: srv.cfg.MaxBulk, maxArgs: srv.cfg.MaxArgs, maxQuery: srv.cfg.MaxQueryBuffer,
	}
	return sess
}

// shutdown asks the session to stop after the batch it is running.
func (sess *session) shutdown() {
	sess.stopping.Store(true)
	if sess.onShutdown != nil {
		sess.onShutdown()
		return
	}
	_ = sess.conn.SetReadDeadline(time.Now())
}

// kill closes the connection at once (CLIENT KILL).
func (sess *session) kill() {
	sess.killed.Store(true)
	sess.shutdown()
}

// serve reads batches of pipelined commands, runs them and flushes their
// replies once per batch, until the client leaves or the server closes.
func (sess *session) serve() {
	defer func() {
		sess.watch.Unwatch()
		_ = sess.conn.Close()
	}()
	rd := newRequestReader(sess.guard)
	for {
		cmds, err := rd.ReadCommands()
		if err != nil {
			sess.readFailed(err)
			_ = sess.flush()
			return
		}
		sess.runBatch(cmds)
		if sess.killed.Load() {
			// CLIENT KILL from another connection: closed without the
			// replies still to send, as Redis frees a killed client.
			return
		}
		if err := sess.flush(); err != nil || sess.quit {
			return
		}
		if sess.stopping.Load() {
			return
		}
	}
}

// readFailed writes the answer to a protocol error, to be flushed before
// the connection closes; EOF, the idle timeout and a closing server close
// it silently.
func (sess *session) readFailed(err error) {
	var pe *protocolError
	switch {
	case errors.As(err, &pe):
		sess.w.err(pe.reply)
	case strings.HasPrefix(err.Error(), "Protocol error:"):
		// The reader's framing errors carry Redis's wording.
		sess.w.err("ERR " + err.Error())
	case errors.Is(err, io.EOF), errors.Is(err, errStopping), isTimeout(err), errors.Is(err, net.ErrClosed):
		return
	default:
		sess.srv.log.Debug("resp: read failed", "client", sess.id, "err", err)
	}
}

func (sess *session) flush() error {
	if len(sess.w.buf) == 0 {
		return nil
	}
	_ = sess.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := sess.conn.Write(sess.w.buf)
	if cap(sess.w.buf) > 1<<20 {
		sess.w.buf = nil // do not keep a large reply's buffer for an idle client
	} else {
		sess.w.buf = sess.w.buf[:0]
	}
	return err
}

// runBatch runs one read batch of pipelined commands in order. A batch of
// one command runs directly; a longer one runs through the session's
// pipeline (pipeline.go), which gives runs of blind writes one engine
// Write and, with ConcurrentPipeline, other keyed commands concurrent
// commits.
func (sess *session) runBatch(cmds []request) {
	now := time.Now()
	if len(cmds) == 1 {
		now = sess.dispatch(cmds[0].command(), cmds[0].Args, &sess.w, now)
	} else {
		now = sess.pipe.run(cmds, now)
	}
	if ops := sess.srv.ops; ops != nil {
		ops.ObserveBatch(&sess.lat, now)
	}
	sess.publishInfo(now)
}

// batchLatency is where a command that writes its reply to w records its
// dashboard figure: the session's batch (recorded when the batch ends)
// for the session's own reply buffer, nil (at once) for a command of a
// concurrent wave, which runs on another goroutine.
func (sess *session) batchLatency(w *replyWriter) *telemetry.LatencyBatch {
	if w == &sess.w {
		return &sess.lat
	}
	return nil
}

// resolve finds the command (or subcommand) args name, given cmd, the
// command args[0] names (nil: none), or writes the error and returns nil.
func (sess *session) resolve(cmd *command, args [][]byte, w *replyWriter) *command {
	if cmd == nil {
		w.err(unknownCommand(args))
		return nil
	}
	if !cmd.arityOK(len(args)) {
		sess.srv.statsOf(cmd).rejected.Add(1)
		w.err("ERR wrong number of arguments for '" + cmd.name + "' command")
		return nil
	}
	if len(cmd.subcommands) > 0 && len(args) >= 2 {
		s := cmd.lookupSub(string(args[1]))
		if s == nil {
			w.err("ERR unknown subcommand '" + clip(string(args[1]), 128) + "'. Try " + strings.ToUpper(cmd.name) + " HELP.")
			return nil
		}
		if !s.arityOK(len(args)) {
			sess.srv.statsOf(s).rejected.Add(1)
			w.err("ERR wrong number of arguments for '" + s.name + "' command")
			return nil
		}
		return s
	}
	return cmd
}

// unknownCommand is Redis's error text for a command not in the table.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.WriteString(clip(string(args[0]), 128))
	b.WriteString("', with args beginning with: ")
	for _, a := range args[1:] {
		if b.Len() >= 128 {
			break
		}
		b.WriteString("'")
		b.WriteString(clip(string(a), 128-b.Len()))
		b.WriteString("' ")
	}
	return b.String()
}

func clip(s string, n int) string {
	if n < 0 {
		n = 0
	}
	if len(s) > n {
		return s[:n]
	}
	return s
}

// dispatch runs one command that started at start, writing its reply to
// w, and returns when it ended (the start of the next command). named is
// the command args[0] names (nil: none), looked up once by the caller.
func (sess *session) dispatch(named *command, args [][]byte, w *replyWriter, start time.Time) time.Time {
	sess.srv.totalCommands.Add(1)
	cmd := sess.resolve(named, args, w)
	if cmd == nil {
		if sess.multi {
			sess.dirty = true
		}
		return start
	}
	sess.last = cmd
	if cmd.flags&flagKeyless != 0 {
		// CLIENT LIST and INFO may be about to show this session.
		sess.publishInfo(start)
	}
	if !sess.authed && cmd.flags&flagNoAuth == 0 {
		sess.srv.statsOf(cmd).rejected.Add(1)
		w.err("NOAUTH Authentication required.")
		if sess.multi {
			sess.dirty = true
		}
		return start
	}
	if sess.multi && cmd.flags&flagNoMulti != 0 {
		sess.srv.statsOf(cmd).rejected.Add(1)
		// Refused at once, as in Redis, without spoiling the transaction.
		w.err("ERR " + strings.ToUpper(cmd.name) + " inside MULTI is not allowed")
		return start
	}
	if sess.multi && cmd.flags&flagNoQueue == 0 {
		sess.queued = append(sess.queued, queuedCommand{cmd: cmd, args: copyArgs(args)})
		w.simple("QUEUED")
		return start
	}
	return sess.srv.run(sess, cmd, args, w, nil, start)
}

// publishInfo copies the state CLIENT LIST shows to where other sessions
// may read it: once per batch of commands, and before a command that may
// show it.
func (sess *session) publishInfo(now time.Time) {
	multi := -1
	if sess.multi {
		multi = len(sess.queued)
	}
	watching := sess.watch.Len()
	sess.mu.Lock()
	if sess.last != nil {
		sess.lastCmd = sess.last.name
	}
	sess.active = now
	sess.infoMulti, sess.infoWatch, sess.infoProto = multi, watching, sess.w.proto
	sess.mu.Unlock()
}

// run executes cmd, which started at start, and records its figures; it
// returns when the command ended. tx is the EXEC transaction the command
// runs in, or nil.
func (srv *Server) run(sess *session, cmd *command, args [][]byte, w *replyWriter, tx *kv.Tx, start time.Time) (end time.Time) {
	before := len(w.buf)
	x := sess.takeCall(w, tx)
	*x = call{srv: srv, sess: sess, cmd: cmd, args: args, w: w, tx: tx, now: start}
	defer func() {
		sess.releaseCall(x)
		// A handler's bug fails its command, not the server: the client
		// gets an error in place of the reply, the log gets the stack.
		if p := recover(); p != nil {
			srv.log.Error("resp: command panicked", "command", cmd.name, "panic", p, "stack", string(debug.Stack()))
			w.buf = w.buf[:before]
			w.err("ERR internal error running '" + cmd.name + "'; the server log has the details")
			if sess.deferring {
				// A write it made still waits for the pass's sync (the
				// deferral's newest ticket covers it); its reply is this error.
				sess.deferral.TakeLast()
			}
			end = srv.finish(cmd, start, true, tx == nil, sess.batchLatency(w))
		}
	}()
	cmd.run(x)
	if sess.deferring {
		sess.noteDeferred(cmd, before, len(w.buf))
	}
	failed := len(w.buf) > before && w.buf[before] == '-'
	return srv.finish(cmd, start, failed, tx == nil, sess.batchLatency(w))
}

// finish records a command that started at start and has just ended, and
// returns the time it ended: the clock is read once. own is false for a
// command inside EXEC, which the dashboard counts as the one EXEC.
// lat, when not nil, holds the dashboard's figure until the batch ends
// (session.lat).
func (srv *Server) finish(cmd *command, start time.Time, failed, own bool, lat *telemetry.LatencyBatch) time.Time {
	var d time.Duration
	switch {
	case !cmd.hasFam || srv.ops == nil || !own:
		d = time.Since(start)
	case lat != nil:
		d = time.Since(start)
		lat.Add(cmd.fam, d)
	default:
		d = srv.ops.ObserveSince(cmd.fam, start)
	}
	srv.observe(cmd, d, failed)
	return start.Add(d)
}

// copyArgs detaches queued arguments from the request reader's buffer.
func copyArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = slices.Clone(a)
	}
	return out
}

// takeCall returns the call a command of sess runs as: the session's own
// for a command of the session's goroutine writing to the session's reply
// buffer outside EXEC (the usual case, which then allocates nothing); a
// new one for the commands of EXEC and of a concurrent wave, which may run
// while another call of the session is in progress.
func (sess *session) takeCall(w *replyWriter, tx *kv.Tx) *call {
	if w == &sess.w && tx == nil && !sess.ownBusy {
		sess.ownBusy = true
		return &sess.own
	}
	return new(call)
}

// releaseCall ends a call from takeCall.
func (sess *session) releaseCall(x *call) {
	if x == &sess.own {
		*x = call{}
		sess.ownBusy = false
	}
}

// recycleStrings empties s for reuse, dropping its references (which may
// alias a request's bytes); nil when it grew too large to keep.
func recycleStrings(s []string) []string {
	clear(s)
	if cap(s) > 1024 {
		return nil
	}
	return s[:0]
}

// call is one command being run: its arguments, where its reply goes, and
// the EXEC transaction it belongs to (nil when it runs on its own).
type call struct {
	srv  *Server
	sess *session
	cmd  *command
	args [][]byte
	w    *replyWriter
	tx   *kv.Tx
	// batch gathers the writes of a pipeline's run of blind writes (nil:
	// the command writes on its own).
	batch *kv.BlindBatch
	// now is when the command started; relative expiries count from it.
	now time.Time
}

func (x *call) arg(i int) string { return string(x.args[i]) }

// transientArg is argument i for a key or value that the store uses only
// until the command's writes are committed: a read, an INCR (one commit
// inside the call), or a blind write, which commits before this read
// batch ends (pipeline.go), while the request's bytes are still unchanged. When the engine keeps no reference
// to the strings it is given (kv.Store.TransientArgs) it is a view of the
// request's bytes, saving a copy and an allocation; otherwise a copy.
// Inside EXEC, where the engine transaction holds its writes until EXEC
// commits, it is always a copy.
func (x *call) transientArg(i int) string {
	if x.tx == nil {
		return transientKey(x.srv, x.args[i])
	}
	return string(x.args[i])
}

func (x *call) ctx() context.Context { return x.sess.writeCtx() }

// writeCtx is the context of the session's engine calls: with its
// deferral while the event loop runs a batch of deferring writes.
func (sess *session) writeCtx() context.Context {
	if sess.deferring {
		return sess.deferCtx
	}
	return context.Background()
}

// update runs fn as a read-modify-write of keys: on its own, one engine
// transaction retried on conflict; inside EXEC, on EXEC's transaction.
func (x *call) update(keys []string, fn func(tx *kv.Tx) error) error {
	x.notBatched()
	if x.tx != nil {
		return fn(x.tx)
	}
	return x.srv.store.Update(x.ctx(), keys, fn)
}

// view runs fn reading the newest state (EXEC's transaction inside EXEC).
func (x *call) view(fn func(tx *kv.Tx) error) error {
	x.notBatched()
	if x.tx != nil {
		return fn(x.tx)
	}
	return x.srv.store.View(x.ctx(), fn)
}

// blind runs fn, which only writes, as one engine Write (EXEC's
// transaction inside EXEC).
func (x *call) blind(fn func(tx *kv.Tx) error) error {
	switch {
	case x.tx != nil:
		return fn(x.tx)
	case x.batch != nil:
		return x.batch.Add(fn)
	}
	return x.srv.store.Blind(x.ctx(), fn)
}

// errBatchedRead is the panic of a command that reads while its writes
// were being gathered into a pipeline's blind batch: its table's blind
// check is wrong. The pipeline then runs the batch's commands one by one,
// so the client still gets the right replies.
var errBatchedRead = errors.New("resp: a command run as a blind write tried to read")

func (x *call) notBatched() {
	if x.batch != nil {
		panic(errBatchedRead)
	}
}

// fail writes err as a RESP error.
func (x *call) fail(err error) { x.w.err(errorReply(err)) }
