package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/mantisdb/mantisdb/storage"
)

// toolMaxValueSize is the value limit of an engine a subcommand opens: the
// format's own limit, so a dump of a server configured for large values
// loads, and is read back, whatever this process's defaults.
const toolMaxValueSize = 1 << 30

// openDataDir opens the Rust engine on dir for a subcommand. A missing
// dir is created when create is set (load) and an error otherwise (dump):
// reading from a mistyped path must not make an empty database there.
func openDataDir(dir string, create bool) (storage.StorageEngine, error) {
	if !storage.RustAvailable {
		return nil, errors.New("reading a data directory needs the Rust engine; use the mantisdb-rust build (make build-rust)")
	}
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", dir, err)
		}
	} else {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("no database at %s: %w", dir, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", dir)
		}
	}
	cfg := storage.DefaultConfig()
	cfg.DataDir = dir
	// A load syncs once at the end (closeEngine) instead of per batch: a
	// load cut short is started again either way.
	cfg.Sync = storage.SyncNever
	cfg.MaxValueSize = toolMaxValueSize
	engine, err := storage.NewStorageEngine("rust", cfg)
	if err != nil {
		return nil, err
	}
	if err := engine.Init(dir); err != nil {
		if errors.Is(err, storage.ErrLocked) {
			return nil, fmt.Errorf("%s is open in a running server; stop it, or use --target with the server's URL", dir)
		}
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	return engine, nil
}
