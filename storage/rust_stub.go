//go:build !rust

package storage

import "fmt"

// DefaultEngine is the engine NewDefaultStorageEngine picks: "memory" in
// builds without the Rust core.
const DefaultEngine = "memory"

// RustAvailable reports whether this binary links the Rust engine.
const RustAvailable = false

func newRustEngine(Config) (StorageEngine, error) {
	return nil, fmt.Errorf("%w: the rust engine is not in this build (build with -tags rust, e.g. make build-rust)", ErrInvalidArgument)
}
