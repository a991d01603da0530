package resp

import (
	"errors"

	"github.com/mantisdb/mantisdb/internal/kv"
)

func cmdMulti(x *call) {
	if x.sess.multi {
		x.w.err(errNestedMulti)
		return
	}
	x.sess.multi = true
	x.sess.queued, x.sess.dirty = nil, false
	x.w.ok()
}

func cmdDiscard(x *call) {
	if !x.sess.multi {
		x.w.err("ERR DISCARD without MULTI")
		return
	}
	x.sess.endMulti()
	x.w.ok()
}

// endMulti leaves MULTI and unwatches, as EXEC and DISCARD do.
func (sess *session) endMulti() {
	sess.multi, sess.queued, sess.dirty = false, nil, false
	sess.watch.Unwatch()
}

// cmdExec runs the queued commands as one engine transaction, retried
// whole on a conflict with writers of other keys, unless a watched key
// changed (a nil reply). Each command's error is its own reply; the
// others still commit, as in Redis.
func cmdExec(x *call) {
	sess := x.sess
	if !sess.multi {
		x.w.err("ERR EXEC without MULTI")
		return
	}
	queued := sess.queued
	if sess.dirty {
		sess.endMulti()
		x.w.err("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	sess.multi, sess.queued = false, nil
	var keys []string
	for _, q := range queued {
		keys = append(keys, q.cmd.keys(q.args)...)
	}
	var out replyWriter
	err := x.srv.store.Exec(x.ctx(), sess.watch, keys, func(tx *kv.Tx) error {
		// A retried attempt starts its replies afresh.
		out = replyWriter{proto: x.w.proto}
		at := tx.Now()
		for _, q := range queued {
			at = x.srv.run(sess, q.cmd, q.args, &out, tx, at)
		}
		return nil
	})
	switch {
	case errors.Is(err, kv.ErrWatchedKeyChanged):
		x.w.nullArray()
	case err != nil:
		x.fail(err)
	default:
		x.w.array(len(queued))
		x.w.raw(out.buf)
	}
}

func cmdWatch(x *call) {
	if err := x.sess.watch.Add(x.ctx(), x.cmd.keys(x.args)...); err != nil {
		x.fail(err)
		return
	}
	x.w.ok()
}

func cmdUnwatch(x *call) {
	x.sess.watch.Unwatch()
	x.w.ok()
}
