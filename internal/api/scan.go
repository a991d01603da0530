package api

import (
	"net/http"
	"strconv"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
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
// order, from start (kv.Store.ScanPage). A page's bytes are counted as
// they are sent, base64 included.
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
	limit := kv.DefaultPageLimit
	if q.Has("limit") {
		limit, err = strconv.Atoi(q.Get("limit"))
		if err != nil || limit < 1 || limit > kv.MaxPageLimit {
			s.fail(w, r, invalidf("limit must be a whole number in 1..%d, got %q", kv.MaxPageLimit, q.Get("limit")))
			return
		}
	}
	page, err := s.kv.ScanPage(r.Context(), kv.PageQuery{
		Prefix: prefix, Start: start, Limit: limit,
		Size: func(key, value string) int { return encodedLen(key) + encodedLen(value) },
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ans := scanPage{Items: make([]scanItem, 0, len(page.Items))}
	for _, p := range page.Items {
		k, kenc := encodeBytes(p.Key)
		v, venc := encodeBytes(p.Value)
		ans.Items = append(ans.Items, scanItem{Key: k, KeyEncoding: kenc, Value: v, ValueEncoding: venc})
	}
	if page.More {
		next, enc := encodeBytes(page.Next)
		ans.Next, ans.NextEncoding = &next, enc
	}
	writeJSON(w, http.StatusOK, ans)
}
