//go:build !rust

package storage

import "fmt"

var errNoRust = fmt.Errorf("%w: checking a data directory needs the Rust engine (build with -tags rust, e.g. make build-rust)", ErrInvalidArgument)

// CheckDataDir needs the Rust core; this build has none.
func CheckDataDir(string) (DirReport, error) { return DirReport{}, errNoRust }

// RepairDataDir needs the Rust core; this build has none.
func RepairDataDir(string) error { return errNoRust }
