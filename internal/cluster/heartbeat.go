package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// gatedTransport is raft's network transport with its heartbeat fast path
// behind a gate. The transport runs heartbeats on the goroutine of the
// connection that carried them, outside raft's main loop, so raft's
// Shutdown does not wait for one in flight; such a heartbeat can still
// save a new term to the raft log store after Shutdown returned, and raft
// panics if the store was closed meanwhile. Closing the gate waits for
// every heartbeat in flight and refuses later ones, so the stores can be
// closed after it.
type gatedTransport struct {
	*raft.NetworkTransport
	mu     sync.RWMutex
	closed bool
}

// SetHeartbeatHandler implements raft.Transport.
func (t *gatedTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		if t.closed {
			rpc.Respond(nil, raft.ErrRaftShutdown)
			return
		}
		cb(rpc)
	})
}

// closeHeartbeats returns once no heartbeat handler runs, and makes every
// later heartbeat fail without reaching raft.
func (t *gatedTransport) closeHeartbeats() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}
