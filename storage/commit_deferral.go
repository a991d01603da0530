package storage

import "context"

// Deferred acknowledgements.
//
// Under the `always` sync policy a write returns once it is durable. A
// caller that serves many clients from one goroutine (the Redis protocol's
// event loop) would then wait for one sync per write, one client at a
// time. With a CommitDeferral in the write's context, an engine that
// implements CommitAwaiter may instead return as soon as the write is
// logged and applied (not yet durable, and not visible to other readers),
// leaving its commit ticket in the deferral; the caller then waits once,
// with AwaitCommit, for the newest ticket of everything it deferred, and
// only then acknowledges those writes. One sync covers them all.
//
// Until AwaitCommit returns, a deferred write is neither acknowledged nor
// visible to others: the caller must not report it to anyone, and must not
// read the keys it wrote expecting to see it (a later update of the same
// key through Updater does see it, as it sees every earlier commit). A
// write whose context has no deferral, or an engine that does not
// implement CommitAwaiter, returns only once durable, as always.

// CommitDeferral collects the tickets of writes that returned before they
// were durable. It is used by one goroutine at a time.
type CommitDeferral struct {
	last, newest uint64
}

// Defer records the ticket of a write that returned before it was durable
// (0: nothing to wait for). Called by engines.
func (d *CommitDeferral) Defer(ticket uint64) {
	if ticket == 0 {
		return
	}
	d.last = ticket
	d.newest = max(d.newest, ticket)
}

// TakeLast returns the ticket deferred since the last call (0: none) and
// forgets it.
func (d *CommitDeferral) TakeLast() uint64 {
	t := d.last
	d.last = 0
	return t
}

// Newest is the newest ticket deferred since Reset (0: none).
func (d *CommitDeferral) Newest() uint64 { return d.newest }

// Reset forgets every deferred ticket (once they were awaited).
func (d *CommitDeferral) Reset() { d.last, d.newest = 0, 0 }

type deferralKey struct{}

// WithCommitDeferral returns a context whose writes may defer their
// acknowledgement into d (see CommitAwaiter).
func WithCommitDeferral(ctx context.Context, d *CommitDeferral) context.Context {
	return context.WithValue(ctx, deferralKey{}, d)
}

// CommitDeferralFrom is the context's deferral, nil when it has none: an
// engine that defers commits records its tickets there.
func CommitDeferralFrom(ctx context.Context) *CommitDeferral {
	if ctx == nil {
		return nil
	}
	d, _ := ctx.Value(deferralKey{}).(*CommitDeferral)
	return d
}

// CommitAwaiter is implemented by engines whose writes can defer their
// acknowledgement (see WithCommitDeferral): Put, PutWithTTL, Delete, Write
// and Updater's updates.
type CommitAwaiter interface {
	// DefersCommits reports whether writes under a deferral return before
	// they are durable (the `always` sync policy); when false, deferring
	// gains nothing and every write waits as usual.
	DefersCommits() bool
	// AwaitCommit returns once every commit up to ticket is durable and
	// visible, or with an error when any of them failed; the caller then
	// asks CommitOutcome for each of its tickets.
	AwaitCommit(ticket uint64) error
	// CommitOutcome is the outcome of the commit of one ticket: nil when
	// it is durable, otherwise the error that the write would have
	// returned had it waited.
	CommitOutcome(ticket uint64) error
}
