package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A follower can apply a committed entry before the leader's FSM does.
// Once a linearizable read on the follower returned that entry's value,
// a later linearizable read on the leader must return it too: it waits for
// the leader to apply the commit index instead of answering from the
// leader's older applied state.
func TestLinearizableReadAfterFollowerAppliedFirst(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader()
	f := c.follower()
	ctx := t.Context()
	mustPut(t, leader.e, "k", "v1")
	// The term's barrier runs now, while the leader's FSM is free.
	wantGet(t, ctx, leader.e, "k", "v1")

	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	hold := func(logs []*raft.Log) {
		for _, l := range logs {
			if l.Type == raft.LogCommand {
				<-release
				return
			}
		}
	}
	leader.e.fsm.beforeApply.Store(&hold)
	defer leader.e.fsm.beforeApply.Store(nil)

	written := make(chan error, 1)
	go func() { written <- leader.e.Put(ctx, "k", "v2") }()
	eventually(t, "the follower applies v2", func() error {
		got, err := f.e.Get(WithConsistency(ctx, Stale), "k")
		if err != nil {
			return err
		}
		if got != "v2" {
			return fmt.Errorf("the follower still has %q", got)
		}
		return nil
	})
	wantGet(t, WithConsistency(ctx, Linearizable), f.e, "k", "v2")
	if got, err := leader.e.Get(WithConsistency(ctx, Stale), "k"); err != nil || got != "v1" {
		t.Fatalf("the held leader's engine has %q, %v; want v1 until released", got, err)
	}

	read := make(chan string, 1)
	go func() {
		got, err := leader.e.Get(WithConsistency(ctx, Linearizable), "k")
		if err != nil {
			got = "error: " + err.Error()
		}
		read <- got
	}()
	select {
	case got := <-read:
		t.Fatalf("a linearizable read on the leader answered %q before its FSM applied the committed v2", got)
	case <-time.After(300 * time.Millisecond):
	}
	unblock()
	if got := <-read; got != "v2" {
		t.Fatalf("linearizable read on the leader after the follower returned v2 = %q", got)
	}
	if err := <-written; err != nil {
		t.Fatalf("Put v2: %v", err)
	}
}
