package kv

// Writes whose acknowledgement waits elsewhere (storage.CommitDeferral).
//
// A caller that serves many clients from one goroutine can run their
// writes with a context made by storage.WithCommitDeferral: on an engine
// that defers commits (the Rust engine under --sync always), Put, Write,
// BlindBatch.Commit, IncrBy and Append then return once the write is
// applied, before it is durable, and the caller acknowledges them only
// after one AwaitCommit for the newest ticket. Other operations (Update,
// Exec, conditional writes) ignore the deferral and wait as usual, so a
// caller that runs one under a deferral gets a correct, only slower,
// answer. Keys a deferred write touches are reported to WATCH at once: a
// watcher that sees the change early aborts an EXEC it would have aborted
// anyway, and one that watches after it still conflicts with it in the
// engine (Exec reads every watched key inside its transaction).

// DefersCommits reports whether writes under a storage.CommitDeferral may
// return before they are durable; when false a deferral is never filled.
func (s *Store) DefersCommits() bool { return s.awaiter != nil }

// AwaitCommit returns once every commit up to ticket is durable and
// visible (nil at once for ticket 0 or an engine that does not defer), or
// with the first failure; then CommitOutcome tells each ticket's own.
func (s *Store) AwaitCommit(ticket uint64) error {
	if s.awaiter == nil || ticket == 0 {
		return nil
	}
	return s.awaiter.AwaitCommit(ticket)
}

// CommitOutcome is the outcome of one deferred write after AwaitCommit
// failed: nil when it is durable, else the error the write would have
// returned had it waited.
func (s *Store) CommitOutcome(ticket uint64) error {
	if s.awaiter == nil || ticket == 0 {
		return nil
	}
	return s.awaiter.CommitOutcome(ticket)
}
