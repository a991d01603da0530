package storage

// ReadLimiter is implemented by iterators that fetch pairs ahead of the
// caller in batches (the Rust engine's). LimitReads tells such an iterator
// that its caller reads at most n more pairs (counting from the next call
// to Next): it then fetches no more than n ahead, in as few batches as it
// can, rather than in small batches growing from the first (which suit a
// caller that may stop at any pair). It is a hint, never a limit on what
// Next returns: past n pairs, Next goes on fetching as without it.
type ReadLimiter interface {
	LimitReads(n int)
}

// LimitReads passes the hint of ReadLimiter to it, if it takes one.
func LimitReads(it Iterator, n int) {
	if l, ok := it.(ReadLimiter); ok {
		l.LimitReads(n)
	}
}
