package storage

import (
	"context"

	"github.com/google/btree"
)

// NewIterator walks keys starting with prefix in byte order, at one point in
// time; an empty prefix walks every key.
func (e *MemoryEngine) NewIterator(_ context.Context, prefix string) (Iterator, error) {
	s, err := e.snapshot()
	if err != nil {
		return nil, err
	}
	end, bounded := PrefixSuccessor(prefix)
	return e.newIterator(s, prefix, end, bounded), nil
}

// NewRangeIterator walks keys in [start, end) in byte order at one point in
// time; an empty end means to the last key, and start >= end walks nothing.
func (e *MemoryEngine) NewRangeIterator(_ context.Context, start, end string) (Iterator, error) {
	s, err := e.snapshot()
	if err != nil {
		return nil, err
	}
	return e.newIterator(s, start, end, end != ""), nil
}

func (e *MemoryEngine) newIterator(s *memSnapshot, start, end string, bounded bool) *memIterator {
	return &memIterator{
		e:         e,
		tree:      s.tree,
		next:      start,
		end:       end,
		bounded:   bounded,
		now:       nowMs(),
		exhausted: bounded && start >= end,
	}
}

// memIterator walks one snapshot in chunks, so each step is O(log n) at worst.
type memIterator struct {
	e    *MemoryEngine
	tree *btree.BTreeG[*memEntry]
	// next is the inclusive lower bound of the next chunk.
	next       string
	end        string
	bounded    bool
	now        int64
	buf        []*memEntry
	pos        int
	exhausted  bool
	closed     bool
	key, value string
	err        error
}

// Next advances; false at the end, after Close, or once the engine is closed
// (then Error returns ErrClosed).
func (it *memIterator) Next() bool {
	it.key, it.value = "", ""
	if it.closed || it.err != nil {
		return false
	}
	if it.e.cur.Load() == nil {
		it.err = ErrClosed
		it.buf = nil
		return false
	}
	for {
		if it.pos < len(it.buf) {
			ent := it.buf[it.pos]
			it.pos++
			it.key, it.value = ent.key, ent.value
			return true
		}
		if it.exhausted {
			return false
		}
		it.refill()
	}
}

func (it *memIterator) refill() {
	it.buf, it.pos = it.buf[:0], 0
	more, last := false, ""
	visit := func(ent *memEntry) bool {
		if len(it.buf) == memIterChunk {
			more = true
			return false
		}
		last = ent.key
		if !ent.expired(it.now) {
			it.buf = append(it.buf, ent)
		}
		return true
	}
	from := &memEntry{key: it.next}
	if it.bounded {
		it.tree.AscendRange(from, &memEntry{key: it.end}, visit)
	} else {
		it.tree.AscendGreaterOrEqual(from, visit)
	}
	if more {
		// The smallest key after last.
		it.next = last + "\x00"
	} else {
		it.exhausted = true
	}
}

// Key returns the current key ("" when there is none).
func (it *memIterator) Key() string { return it.key }

// Value returns the current value ("" when there is none).
func (it *memIterator) Value() string { return it.value }

// Error returns ErrClosed if the engine was closed during iteration, else nil.
func (it *memIterator) Error() error { return it.err }

// Close releases the iterator; it is safe to call twice.
func (it *memIterator) Close() error {
	it.closed = true
	it.buf, it.tree = nil, nil
	it.key, it.value = "", ""
	return nil
}
