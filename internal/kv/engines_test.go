package kv

import (
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

// runOnEngines runs test once per engine this binary has (memory, and the
// Rust engine under -tags rust), each time on a Store over a fresh engine.
func runOnEngines(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Helper()
	names := []string{"memory"}
	if storage.RustAvailable {
		names = append(names, "rust")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			test(t, New(openEngine(t, name)))
		})
	}
}

// openEngine opens engine name in a fresh directory, closed when t ends.
func openEngine(t *testing.T, name string) storage.StorageEngine {
	t.Helper()
	dir := t.TempDir()
	cfg := storage.DefaultConfig()
	cfg.DataDir = dir
	cfg.Sync = storage.SyncNever
	e, err := storage.NewStorageEngine(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Init(dir); err != nil {
		t.Fatalf("Init %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close %s: %v", name, err)
		}
	})
	return e
}
