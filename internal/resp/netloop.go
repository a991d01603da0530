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
	loopRunsWrites         // those, and writes (no write waits for a sync)
)

// loopPolicy decides what the event loops may run: nothing that can wait.
// Under a cluster every command may wait for the leader; under
// ConcurrentPipeline (--sync always on a durable engine) every write waits
// for its sync.
func loopPolicy(cfg Config) int {
	switch {
	case strings.HasPrefix(cfg.Store.Engine().Name(), "cluster"):
		return loopRunsNothing
	case cfg.ConcurrentPipeline:
		return loopRunsReads
	}
	return loopRunsWrites
}

func defaultLoops() int { return max(1, runtime.GOMAXPROCS(0)) }

// runsOnLoop reports whether a batch may run on the event loop: none of
// its commands waits (for a sync, a replica, or a scan of the keyspace).
func (s *Server) runsOnLoop(sess *session, cmds []request) bool {
	if s.loopRuns == loopRunsNothing {
		return false
	}
	for i := range cmds {
		cmd := cmds[i].command()
		if cmd == nil {
			continue // answered with an error
		}
		switch f := cmd.flags; {
		case f&flagKeyless != 0:
			// PING, ECHO, HELLO, AUTH, SELECT, MULTI, DISCARD, WATCH...;
			// not EXEC, KEYS, SCAN, INFO, DBSIZE, FLUSHALL, CLIENT, CONFIG.
			if f&flagFast == 0 || f&(flagReadonly|flagWrite) != 0 || len(cmd.subcommands) > 0 {
				return false
			}
		case f&flagWrite != 0:
			if s.loopRuns != loopRunsWrites {
				return false
			}
		}
	}
	return true
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
