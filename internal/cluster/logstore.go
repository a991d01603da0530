package cluster

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// timedLogStore counts raft's log appends and the time they take. On the
// leader an append runs on raft's main loop before the entries go to the
// followers, and each is a raft-boltdb transaction with its fsyncs: the
// figure that most often bounds a cluster's write rate.
type timedLogStore struct {
	raft.LogStore
	appends, entries atomic.Uint64
	nanos            atomic.Int64
}

// StoreLog implements raft.LogStore.
func (t *timedLogStore) StoreLog(l *raft.Log) error {
	return t.StoreLogs([]*raft.Log{l})
}

// StoreLogs implements raft.LogStore.
func (t *timedLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := t.LogStore.StoreLogs(logs)
	t.nanos.Add(int64(time.Since(start)))
	t.appends.Add(1)
	t.entries.Add(uint64(len(logs)))
	return err
}
