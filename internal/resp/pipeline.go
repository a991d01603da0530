package resp

import (
	"sync"

	"github.com/tidwall/redcon"
)

// runConcurrent runs one read batch of pipelined commands so that their
// commits share group commits: consecutive commands on pairwise different
// keys form a wave and run concurrently; a command on a key already in the
// wave, a keyless command (FLUSHDB, MULTI, SCAN...) or an unknown one
// starts a new wave and runs alone. Replies keep the request order. Within
// a wave other clients may see the writes in any order; each client still
// sees its own in order, since a later command on the same key waits for
// the earlier one.
func (sess *session) runConcurrent(cmds []redcon.Command) {
	var wave []redcon.Command
	waveKeys := map[string]bool{}
	flushWave := func() {
		sess.runWave(wave)
		wave = wave[:0]
		clear(waveKeys)
	}
	for _, c := range cmds {
		if sess.quit {
			break
		}
		cmd := commandTable[lowerName(c.Args[0])]
		barrier := cmd == nil || cmd.flags&flagKeyless != 0 || !cmd.arityOK(len(c.Args)) || sess.multi
		if barrier {
			flushWave()
			sess.dispatch(c.Args, &sess.w)
			continue
		}
		keys := cmd.keys(c.Args)
		clash := false
		for _, k := range keys {
			if waveKeys[k] {
				clash = true
				break
			}
		}
		if clash {
			flushWave()
		}
		for _, k := range keys {
			waveKeys[k] = true
		}
		wave = append(wave, c)
	}
	flushWave()
}

// runWave runs commands on disjoint keys concurrently, each into its own
// reply buffer, and appends the replies in order.
func (sess *session) runWave(wave []redcon.Command) {
	switch len(wave) {
	case 0:
		return
	case 1:
		sess.dispatch(wave[0].Args, &sess.w)
		return
	}
	outs := make([]replyWriter, len(wave))
	var wg sync.WaitGroup
	for i, c := range wave {
		outs[i].proto = sess.w.proto
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess.dispatchKeyed(c.Args, &outs[i])
		}()
	}
	wg.Wait()
	for i := range outs {
		sess.w.raw(outs[i].buf)
	}
	sess.publishInfo()
}

// dispatchKeyed runs a keyed command of a wave: no MULTI, no connection
// state, so it is safe beside the wave's other commands.
func (sess *session) dispatchKeyed(args [][]byte, w *replyWriter) {
	sess.srv.totalCommands.Add(1)
	cmd := sess.resolve(args, w)
	if cmd == nil {
		return
	}
	if !sess.authed {
		sess.srv.stats[cmd].rejected.Add(1)
		w.err("NOAUTH Authentication required.")
		return
	}
	sess.srv.run(sess, cmd, args, w, nil)
}

func lowerName(b []byte) string {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			out := make([]byte, len(b))
			for i, c := range b {
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				out[i] = c
			}
			return string(out)
		}
	}
	return string(b)
}
