package kv

import (
	"context"
	"strings"

	"github.com/mantisdb/mantisdb/storage"
)

// Page limits of ScanPage.
const (
	// DefaultPageLimit is the page size a protocol uses when its client
	// names none.
	DefaultPageLimit = 100
	// MaxPageLimit is the most items one page holds.
	MaxPageLimit = 1000
	// MaxPageBytes ends a page early once its items' size passes it, so
	// a thousand large values cannot make one enormous answer. A page
	// always holds at least one item.
	MaxPageBytes = 16 << 20
)

// PageQuery asks for one page of the keys starting with Prefix, in byte
// order, from Start (inclusive; a Start before Prefix begins at Prefix).
// Limit is the most items, 1..MaxPageLimit. Size, when set, is what an
// item costs against MaxPageBytes in the protocol's encoding; nil counts
// the key's and value's bytes.
type PageQuery struct {
	Prefix string
	Start  string
	Limit  int
	Size   func(key, value string) int
}

// Pair is one key and its value.
type Pair struct {
	Key   string
	Value string
}

// Page is one page of a scan. When More is set, Next is the Start of the
// following page: the first key this page left out.
type Page struct {
	Items []Pair
	Next  string
	More  bool
}

// ScanPage answers one page of q, read at one point in time. Following
// Next page by page visits every key that exists for the whole scan
// exactly once; keys written meanwhile may or may not appear.
func (s *Store) ScanPage(ctx context.Context, q PageQuery) (Page, error) {
	if q.Limit < 1 || q.Limit > MaxPageLimit {
		return Page{}, invalidf("limit %d is outside 1..%d", q.Limit, MaxPageLimit)
	}
	size := q.Size
	if size == nil {
		size = func(key, value string) int { return len(key) + len(value) }
	}
	start := max(q.Start, q.Prefix)
	end, bounded := storage.PrefixSuccessor(q.Prefix)
	page := Page{Items: []Pair{}}
	if bounded && start >= end {
		return page, nil
	}
	it, err := s.engine.NewRangeIterator(ctx, start, end)
	if err != nil {
		return Page{}, err
	}
	defer func() { _ = it.Close() }()
	if q.Limit > 0 {
		// A page reads its limit and one pair more (to learn whether
		// more follow): an engine that fetches in batches fetches that.
		storage.LimitReads(it, q.Limit+1)
	}
	bytes := 0
	for it.Next() {
		if len(page.Items) == q.Limit || (len(page.Items) > 0 && bytes >= MaxPageBytes) {
			page.Next, page.More = strings.Clone(it.Key()), true
			break
		}
		// The iterator's key and value die at its next step: copy both
		// into one allocation.
		k, v := it.Key(), it.Value()
		kv := k + v
		page.Items = append(page.Items, Pair{Key: kv[:len(k)], Value: kv[len(k):]})
		bytes += size(k, v)
	}
	if err := it.Error(); err != nil {
		return Page{}, err
	}
	return page, nil
}
