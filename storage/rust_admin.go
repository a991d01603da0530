//go:build rust

package storage

// The Rust engine copies itself and compacts on demand; the operator
// routes and tools find these through the interfaces.
var (
	_ Checkpointer = (*RustEngine)(nil)
	_ Compactor    = (*RustEngine)(nil)
)
