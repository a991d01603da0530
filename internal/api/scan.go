package api

import (
	"net/http"
	"strconv"

	"github.com/mantisdb/mantisdb/storage"
)

const (
	// defaultScanLimit and maxScanLimit bound the items of one scan page.
	defaultScanLimit = 100
	maxScanLimit     = 1000
	// scanPageBytes ends a page early once its keys and values pass this
	// size, so 1000 large values cannot make one enormous answer. A page
	// always holds at least one item.
	scanPageBytes = 16 << 20
)

// scanItem is one key and value of a scan page.
type scanItem struct {
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
}

// scanPage is the answer to a scan. Next is the start of the following
// page, null on the last one.
type scanPage struct {
	Items        []scanItem `json:"items"`
	Next         *string    `json:"next"`
	NextEncoding string     `json:"next_encoding,omitempty"`
}

// handleScan answers one page of the keys starting with prefix, in byte
// order, from start (inclusive; a start before prefix begins at prefix).
func (s *Server) handleScan(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r, "prefix", "start", "limit")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	prefix, start := q.Get("prefix"), q.Get("start")
	if len(prefix) > storage.MaxKeySize || len(start) > storage.MaxKeySize {
		s.fail(w, r, invalidf("prefix and start are at most %d bytes", storage.MaxKeySize))
		return
	}
	limit := defaultScanLimit
	if q.Has("limit") {
		limit, err = strconv.Atoi(q.Get("limit"))
		if err != nil || limit < 1 || limit > maxScanLimit {
			s.fail(w, r, invalidf("limit must be a whole number in 1..%d, got %q", maxScanLimit, q.Get("limit")))
			return
		}
	}
	start = max(start, prefix)
	end, bounded := storage.PrefixSuccessor(prefix)
	page := scanPage{Items: []scanItem{}}
	if bounded && start >= end {
		writeJSON(w, http.StatusOK, page)
		return
	}
	it, err := s.engine.NewRangeIterator(r.Context(), start, end)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer func() { _ = it.Close() }()
	size := 0
	for it.Next() {
		if len(page.Items) == limit || (len(page.Items) > 0 && size >= scanPageBytes) {
			next, enc := encodeBytes(it.Key())
			page.Next, page.NextEncoding = &next, enc
			break
		}
		k, kenc := encodeBytes(it.Key())
		v, venc := encodeBytes(it.Value())
		page.Items = append(page.Items, scanItem{Key: k, KeyEncoding: kenc, Value: v, ValueEncoding: venc})
		size += len(k) + len(v)
	}
	if err := it.Error(); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
