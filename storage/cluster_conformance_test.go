//go:build !rust

package storage_test

import (
	"testing"

	"github.com/mantisdb/mantisdb/internal/cluster/clustertest"
	"github.com/mantisdb/mantisdb/storage"
)

// TestClusterConformance runs the conformance suite against a follower of
// a 3-node cluster over loopback TCP: its writes are forwarded to the
// leader and its reads are linearizable. Its nodes use the memory engine,
// so it runs once, in the build without the rust tag.
func TestClusterConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster per case")
	}
	storage.RunConformance(t, func(t *testing.T) storage.StorageEngine {
		c := clustertest.Start(t, 3, "memory", storage.ConformanceConfig(""))
		return c.Follower(t)
	})
}
