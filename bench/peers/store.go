package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotFound is what every adapter's Get returns for a missing key.
var ErrNotFound = errors.New("not found")

// KV is one put of a batch.
type KV struct {
	Key, Value []byte
}

// Store is the one interface every engine is driven through, so each
// workload runs the same calls on every engine. Keys and values handed to a
// Store are never modified afterwards, so an adapter may keep them.
type Store interface {
	// Put commits one key at the store's durability setting.
	Put(key, value []byte) error
	// Get returns a value the caller may keep (it must not modify it), or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Batch commits every pair atomically, as one commit.
	Batch(kvs []KV) error
	// Scan visits up to n pairs whose key starts with prefix, in key order,
	// at one point in time, and returns how many it visited. The slices
	// passed to visit are valid only during the call.
	Scan(prefix []byte, n int, visit func(key, value []byte)) (int, error)
	// Close flushes and releases the store.
	Close() error
}

// Engine is one contender: how to open it and what its settings are.
type Engine struct {
	// Name is the column heading: "mantisdb", "memory", "badger", ...
	Name string
	// Durable is false for the memory engine, which writes nothing to disk.
	Durable bool
	// Open creates a store in the empty directory dir; sync selects
	// fsync per commit (true) or no fsync (false).
	Open func(dir string, sync bool) (Store, error)
	// Setting describes, for the doc, what Open configures at each durability.
	Setting func(sync bool) string
	// Module is the Go module whose version the doc names.
	Module string
}

// cacheBytes is the block or value cache every engine that has one gets,
// so no engine wins by being given more memory: MantisDB's default.
const cacheBytes = 64 << 20

// engines lists every contender in column order. The MantisDB Rust engine
// is left out of builds without the rust tag (see mantis.go).
func engines() []Engine {
	var all []Engine
	if rustEngine.Open != nil {
		all = append(all, rustEngine)
	}
	return append(all, memoryEngine, badgerEngine, pebbleEngine, bboltEngine, buntdbEngine)
}

// selectEngines returns the engines named in names (all when names is empty).
func selectEngines(names []string) ([]Engine, error) {
	all := engines()
	if len(names) == 0 {
		return all, nil
	}
	var out []Engine
	for _, n := range names {
		found := false
		for _, e := range all {
			if e.Name == n {
				out, found = append(out, e), true
			}
		}
		if !found {
			if n == rustName {
				return nil, fmt.Errorf("engine %q is not in this build: build with -tags rust (after make build-rust-core)", n)
			}
			return nil, fmt.Errorf("unknown engine %q", n)
		}
	}
	return out, nil
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
