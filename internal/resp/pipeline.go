package resp

import (
	"context"
	"runtime/debug"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/mantisdb/mantisdb/internal/kv"
)

// Bounds of one blind batch: past either, the batch is written and a new
// one begins, so that a bulk load (redis-cli --pipe) is many moderate
// engine Writes, not one huge one.
const (
	maxBatchOps   = 4096
	maxBatchBytes = 1 << 20
)

// pipeline runs one read batch of pipelined commands for its session, in
// order, with the replies in order, as Redis would run them one by one:
//
//   - A run of consecutive blind writes (SET without NX/XX/GET/KEEPTTL,
//     SETEX, PSETEX, MSET) is gathered into one engine Write: one commit,
//     one sync under --sync always, one crossing into the engine. Their
//     replies are written as they are gathered and leave only after the
//     Write returns (the connection flushes once per read batch). Any
//     other command first writes the gathered batch, so it sees every
//     earlier write of the pipeline. Should the Write fail, the gathered
//     commands run again one by one, each with its own reply.
//   - With ConcurrentPipeline, on a goroutine (not on an event loop, whose
//     batches hold no command that waits), consecutive other commands on
//     pairwise different keys form a wave whose writes run concurrently so their
//     commits share group commits; reads run on the connection's
//     goroutine, and the goroutines of all waves together are bounded by
//     Server.waveSlots (a command that finds no slot runs on the
//     connection's goroutine).
//   - Everything else (keyless commands such as MULTI, EXEC, FLUSHDB,
//     SCAN, CLIENT; unknown commands; arity errors; commands inside MULTI
//     or before AUTH) runs alone, in its place.
//
// Other clients may see the writes of one batch or wave together, or a
// wave's in any order; never a later command's effect before an earlier
// one's on the same key.
type pipeline struct {
	sess *session
	// now is when the next command starts (the previous one's end).
	now time.Time

	batch   *kv.BlindBatch
	pending []pendingWrite

	wave     []waveCommand
	waveKeys map[string]struct{}
	outs     []replyWriter

	// gets are the consecutive plain GETs being gathered (flushGets); keys,
	// lens and vals are flushGets' buffers, kept for the next run.
	gets []pendingGet
	keys []string
	lens []int
	vals []byte
}

// pendingGet is a GET being gathered: its key (args[1]) and when it
// started.
type pendingGet struct {
	cmd   *command
	args  [][]byte
	start time.Time
}

// pendingWrite is a command of the blind batch being gathered.
type pendingWrite struct {
	cmd  *command
	args [][]byte
	// start is when it started, replyAt where its reply begins in the
	// session's reply buffer, failed whether that reply is an error.
	start   time.Time
	replyAt int
	failed  bool
}

// waveCommand is a command of the concurrent wave being gathered.
type waveCommand struct {
	cmd  *command
	args [][]byte
}

// run runs cmds, the first starting at now, and returns when the last one
// ended.
func (p *pipeline) run(cmds []request, now time.Time) time.Time {
	sess := p.sess
	p.now = now
	for i := range cmds {
		if sess.quit || sess.killed.Load() {
			break
		}
		p.add(cmds[i].command(), cmds[i].Args)
	}
	p.flushGets()
	p.flushBatch()
	p.flushWave()
	return p.now
}

// add runs or gathers one command; cmd is the command args[0] names (nil:
// none).
func (p *pipeline) add(cmd *command, args [][]byte) {
	sess := p.sess
	plain := cmd != nil && sess.authed && !sess.multi && cmd.arityOK(len(args)) && len(cmd.subcommands) == 0
	if plain && cmd == getCommand {
		p.flushBatch()
		p.flushWave()
		p.gets = append(p.gets, pendingGet{cmd: cmd, args: args, start: p.now})
		return
	}
	p.flushGets()
	if plain && cmd.blind != nil && cmd.blind(args) {
		p.flushWave()
		if p.batch != nil && (p.batch.Ops() >= maxBatchOps || p.batch.Bytes() >= maxBatchBytes) {
			p.flushBatch()
		}
		p.gather(cmd, args)
		return
	}
	p.flushBatch()
	if plain && sess.srv.cfg.ConcurrentPipeline && !sess.onLoop && cmd.flags&flagKeyless == 0 {
		p.addToWave(cmd, args)
		return
	}
	p.flushWave()
	p.now = sess.dispatch(cmd, args, &sess.w, p.now)
}

// gather runs a blind write into the batch: its writes are buffered, its
// reply written.
func (p *pipeline) gather(cmd *command, args [][]byte) {
	sess := p.sess
	if p.batch == nil {
		p.batch = sess.srv.store.NewBlindBatch(context.Background())
	}
	sess.srv.totalCommands.Add(1)
	sess.last = cmd
	at := len(sess.w.buf)
	p.pending = append(p.pending, pendingWrite{cmd: cmd, args: args, start: p.now, replyAt: at})
	if !p.runGathered(cmd, args, at) {
		// A handler panicked, or read: run the batch one by one, where
		// each command gets the usual handling (the panic its error reply
		// and log line).
		p.batch.Discard()
		p.replay()
		return
	}
	w := &sess.w
	p.pending[len(p.pending)-1].failed = len(w.buf) > at && w.buf[at] == '-'
}

// runGathered runs the handler of a gathered command; false when it
// panicked.
func (p *pipeline) runGathered(cmd *command, args [][]byte, at int) (ok bool) {
	sess := p.sess
	defer func() {
		if r := recover(); r != nil {
			if r != errBatchedRead {
				sess.srv.log.Debug("resp: a batched command panicked; running the batch one by one", "command", cmd.name, "panic", r, "stack", string(debug.Stack()))
			}
			sess.w.buf = sess.w.buf[:at]
			ok = false
		}
	}()
	now := p.now
	if len(args) > 3 && cmd.name != "mset" {
		// SET with options, SETEX, PSETEX: a relative expiry counts from
		// this command, not from the start of the run being gathered.
		now = time.Now()
	}
	x := sess.takeCall(&sess.w, nil)
	defer sess.releaseCall(x)
	*x = call{srv: sess.srv, sess: sess, cmd: cmd, args: args, w: &sess.w, batch: p.batch, now: now}
	cmd.run(x)
	return true
}

// flushBatch writes the gathered blind batch in one engine Write and
// records its commands; if the Write fails, the commands run again one by
// one, replacing their replies.
func (p *pipeline) flushBatch() {
	if len(p.pending) == 0 {
		return
	}
	srv := p.sess.srv
	if err := p.batch.CommitIn(p.sess.writeCtx()); err != nil {
		srv.log.Debug("resp: a pipeline's batched write failed; running its commands one by one", "commands", len(p.pending), "err", err)
		p.replay()
		return
	}
	if sess := p.sess; sess.deferring {
		// One ticket acknowledges the whole batch; each command's reply
		// runs to where the next one's begins.
		if t := sess.deferral.TakeLast(); t != 0 {
			for i, pw := range p.pending {
				end := len(sess.w.buf)
				if i+1 < len(p.pending) {
					end = p.pending[i+1].replyAt
				}
				sess.deferred = append(sess.deferred, deferredReply{cmd: pw.cmd, at: pw.replyAt, end: end, ticket: t})
			}
		}
	}
	for _, pw := range p.pending {
		p.now = srv.finish(pw.cmd, pw.start, pw.failed, true, &p.sess.lat)
	}
	clear(p.pending)
	p.pending = p.pending[:0]
}

// replay runs the gathered commands one by one in place of their gathered
// replies (the batch holds none of their writes any more).
func (p *pipeline) replay() {
	sess := p.sess
	pending := p.pending
	sess.w.buf = sess.w.buf[:pending[0].replyAt]
	sess.srv.totalCommands.Add(-int64(len(pending)))
	for _, pw := range pending {
		p.now = sess.dispatch(pw.cmd, pw.args, &sess.w, p.now)
	}
	clear(p.pending)
	p.pending = p.pending[:0]
}

// flushGets answers the gathered GETs with one read of all their keys
// (kv.Store.AppendValues: one call into the engine), their replies in
// order; each is timed from when it was gathered to the read's end. When
// the read fails, each GET runs alone and answers its own reply.
func (p *pipeline) flushGets() {
	if len(p.gets) == 0 {
		return
	}
	sess := p.sess
	srv := sess.srv
	gets := p.gets
	defer func() {
		clear(p.gets)
		p.gets = p.gets[:0]
	}()
	if len(gets) == 1 {
		p.now = sess.dispatch(gets[0].cmd, gets[0].args, &sess.w, p.now)
		return
	}
	keys := p.keys[:0]
	for _, g := range gets {
		keys = append(keys, transientKey(srv, g.args[1]))
	}
	lens := slices.Grow(p.lens[:0], len(gets))[:len(gets)]
	vals, err := srv.store.AppendValues(context.Background(), p.vals[:0], keys, lens)
	clear(keys)
	p.keys, p.lens = keys[:0], lens[:0]
	if cap(vals) <= maxBatchBytes {
		p.vals = vals[:0]
	}
	if err != nil {
		for _, g := range gets {
			p.now = sess.dispatch(g.cmd, g.args, &sess.w, p.now)
		}
		return
	}
	at := 0
	for i, g := range gets {
		srv.totalCommands.Add(1)
		if n := lens[i]; n < 0 {
			sess.w.null()
		} else {
			sess.w.bulkBytes(vals[at : at+n])
			at += n
		}
		p.now = srv.finish(g.cmd, g.start, false, true, &sess.lat)
	}
	sess.last = gets[len(gets)-1].cmd
}

// transientKey is a GET's key for a read that keeps no reference to it:
// a view of the request buffer when the engine allows it
// (kv.Store.TransientArgs), otherwise a copy.
func transientKey(srv *Server, b []byte) string {
	if srv.store.TransientArgs() {
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	return string(b)
}

// addToWave adds a keyed command to the concurrent wave, first running the
// wave when the command shares a key with it.
func (p *pipeline) addToWave(cmd *command, args [][]byte) {
	if p.waveKeys == nil {
		p.waveKeys = make(map[string]struct{})
	}
	keys := cmd.keys(args)
	for _, k := range keys {
		if _, clash := p.waveKeys[k]; clash {
			p.flushWave()
			break
		}
	}
	for _, k := range keys {
		p.waveKeys[k] = struct{}{}
	}
	p.wave = append(p.wave, waveCommand{cmd: cmd, args: args})
}

// flushWave runs the wave: writes concurrently as far as wave slots allow,
// the rest on this goroutine, each into its own reply buffer, then appends
// the replies in order.
func (p *pipeline) flushWave() {
	sess := p.sess
	switch len(p.wave) {
	case 0:
		return
	case 1:
		c := p.wave[0]
		p.now = sess.dispatch(c.cmd, c.args, &sess.w, p.now)
		p.resetWave()
		return
	}
	srv := sess.srv
	if cap(p.outs) < len(p.wave) {
		p.outs = make([]replyWriter, len(p.wave))
	}
	outs := p.outs[:len(p.wave)]
	start := p.now
	var wg sync.WaitGroup
	inline := make([]bool, len(p.wave))
	for i, c := range p.wave {
		outs[i].proto = sess.w.proto
		outs[i].buf = outs[i].buf[:0]
		if c.cmd.flags&flagWrite == 0 {
			inline[i] = true
			continue
		}
		select {
		case srv.waveSlots <- struct{}{}:
		default:
			inline[i] = true
			continue
		}
		wg.Add(1)
		go func() {
			defer func() {
				<-srv.waveSlots
				wg.Done()
			}()
			sess.runKeyed(c.cmd, c.args, &outs[i], start)
		}()
	}
	end := start
	for i, c := range p.wave {
		if inline[i] {
			end = sess.runKeyed(c.cmd, c.args, &outs[i], start)
		}
	}
	wg.Wait()
	for i := range outs {
		sess.w.raw(outs[i].buf)
		if cap(outs[i].buf) > 64<<10 {
			outs[i].buf = nil
		}
	}
	sess.last = p.wave[len(p.wave)-1].cmd
	if end == start {
		end = time.Now()
	}
	p.now = end
	p.resetWave()
}

func (p *pipeline) resetWave() {
	clear(p.wave)
	p.wave = p.wave[:0]
	clear(p.waveKeys)
}

// runKeyed runs a resolved keyed command of a wave, from an authenticated
// session outside MULTI: it touches no connection state, so it is safe
// beside the wave's other commands. It returns when the command ended.
func (sess *session) runKeyed(cmd *command, args [][]byte, w *replyWriter, start time.Time) time.Time {
	sess.srv.totalCommands.Add(1)
	return sess.srv.run(sess, cmd, args, w, nil, start)
}
