package resp

import (
	"runtime"
	"strings"
)

// Transports: how connections are served. The default (Config.Transport
// empty) is the event loop on one node (where writes wait for a sync, a
// connection's writes move it to a goroutine while they last; see
// netloop_linux.go) and a goroutine per connection in a cluster.
const (
	// TransportEventLoop serves connections from a few event loops, one
	// per CPU (netloop_linux.go; Linux only).
	TransportEventLoop = "eventloop"
	// TransportGoroutines serves each connection on a goroutine of its own
	// over Go's netpoller.
	TransportGoroutines = "goroutines"
)

// What the event loops may run themselves rather than hand to a goroutine.
const (
	loopRunsNothing = iota // every batch runs on a goroutine (a cluster)
	loopRunsReads          // reads and cheap connection commands
	// loopDefersWrites: those, and writes whose acknowledgement can wait
	// for the end of the loop's pass (deferral.go): --sync always on an
	// engine that defers commits.
	loopDefersWrites
	loopRunsWrites // reads and every write (no write waits for a sync)
)

// loopPolicy decides what the event loops may run: nothing that can wait.
// Under a cluster every command may wait for the leader; under
// ConcurrentPipeline (--sync always on a durable engine) every write waits
// for its sync, except those whose engine lets the loop wait for them all
// at once.
func loopPolicy(cfg Config) int {
	switch {
	case strings.HasPrefix(cfg.Store.Engine().Name(), "cluster"):
		return loopRunsNothing
	case cfg.ConcurrentPipeline && cfg.Store.DefersCommits():
		return loopDefersWrites
	case cfg.ConcurrentPipeline:
		return loopRunsReads
	}
	return loopRunsWrites
}

// defaultLoops is the number of event loops when the configuration does
// not name one: one per CPU, or under loopDefersWrites one per two CPUs.
// There each loop waits for its passes' syncs in its own thread (deferral.go),
// and a loop per CPU would have every P in a system call at once: the
// runtime's monitor then takes each back and starts a thread to look for
// work, for every sync. On the 2-vCPU guest one loop served 1.37x the
// synced SETs of two, at 0.65x the CPU per request, and 0.92x the
// pipelined GETs (docs/performance/resp.md).
func defaultLoops(policy int) int {
	n := runtime.GOMAXPROCS(0)
	if policy == loopDefersWrites {
		n /= 2
	}
	return max(1, n)
}

// How an event loop runs a batch of requests (loopBatch).
const (
	batchHandOff  = iota // on a goroutine of its own: a command may wait
	batchOnLoop          // on the loop: reads and cheap connection commands
	batchDeferred        // on the loop, its writes acknowledged at the end of the pass
)

// loopBatch decides where a batch runs: on the loop when none of its
// commands waits (for a sync, a replica, or a scan of the keyspace). Under
// loopDefersWrites a batch made only of writes that defer their
// acknowledgement (blind writes, engine updates) runs on the loop too; one
// that mixes them with anything else is handed off.
func (s *Server) loopBatch(sess *session, cmds []request) int {
	if s.loopRuns == loopRunsNothing {
		return batchHandOff
	}
	reads, defers := false, false
	for i := range cmds {
		cmd := cmds[i].command()
		if cmd == nil || !cmd.arityOK(len(cmds[i].Args)) {
			continue // answered with an error
		}
		switch f := cmd.flags; {
		case f&flagKeyless != 0:
			// PING, ECHO, HELLO, AUTH, SELECT, MULTI, DISCARD, WATCH...;
			// not EXEC, KEYS, SCAN, INFO, DBSIZE, FLUSHALL, CLIENT, CONFIG.
			if f&flagFast == 0 || f&(flagReadonly|flagWrite) != 0 || len(cmd.subcommands) > 0 {
				return batchHandOff
			}
			reads = true
		case f&flagWrite != 0:
			switch {
			case s.loopRuns == loopRunsWrites:
			case s.loopRuns == loopDefersWrites && (f&flagDefers != 0 || (cmd.blind != nil && cmd.blind(cmds[i].Args))):
				defers = true
			default:
				return batchHandOff
			}
		default:
			reads = true
		}
	}
	switch {
	case !defers:
		return batchOnLoop
	case reads:
		return batchHandOff
	}
	return batchDeferred
}

// sessionClosed ends a session the event loop closed.
func (s *Server) sessionClosed(sess *session) {
	sess.watch.Unwatch()
	s.mu.Lock()
	delete(s.sessions, sess.id)
	s.mu.Unlock()
	if s.ops != nil {
		s.ops.ConnClosed()
	}
	s.wg.Done()
}
