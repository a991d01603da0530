package cluster

import (
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Closing the heartbeat gate waits for a heartbeat raft is handling, and
// no heartbeat reaches raft afterwards: the raft stores may then close.
func TestHeartbeatGateWaitsAndRefuses(t *testing.T) {
	recv, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	gated := &gatedTransport{NetworkTransport: recv}
	defer gated.Close()
	send, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()

	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	gated.SetHeartbeatHandler(func(rpc raft.RPC) {
		entered <- struct{}{}
		<-release
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	})
	heartbeat := func() error {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(send.LocalAddr())}, Term: 7}
		var resp raft.AppendEntriesResponse
		return send.AppendEntries("peer", gated.LocalAddr(), req, &resp)
	}

	first := make(chan error, 1)
	go func() { first <- heartbeat() }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the heartbeat never reached the handler")
	}
	closed := make(chan struct{})
	go func() {
		gated.closeHeartbeats()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("closeHeartbeats returned while a heartbeat was being handled")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("closeHeartbeats did not return after the heartbeat finished")
	}
	if err := <-first; err != nil {
		t.Fatalf("heartbeat handled before the gate closed: %v", err)
	}

	if err := heartbeat(); err == nil {
		t.Fatal("a heartbeat after the gate closed succeeded")
	}
	select {
	case <-entered:
		t.Fatal("a heartbeat after the gate closed reached the handler")
	default:
	}
}
