package storage

import "context"

// Checkpointer is an engine that can copy itself, consistently and while
// it serves reads and writes, into a directory that then opens as a
// database holding exactly the data of one moment. The Rust engine is one;
// the memory engine has no files and is not.
type Checkpointer interface {
	// Checkpoint writes the copy into dir, which must be missing or empty.
	Checkpoint(ctx context.Context, dir string) error
}

// Compactor is an engine that can rewrite its files now to reclaim the
// space of overwritten, deleted and expired data, rather than waiting for
// its background compaction.
type Compactor interface {
	// Compact runs one compaction pass and returns when it is done.
	Compact(ctx context.Context) error
}
