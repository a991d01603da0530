package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/mantisdb/mantisdb/storage"
)

const contentTypeRaw = "application/octet-stream"

// preallocLimit is the most readRaw allocates ahead of the bytes arriving.
const preallocLimit = 64 << 10

// putRequest is the JSON body of PUT|POST /api/v1/kv/{key}.
type putRequest struct {
	Value         *string         `json:"value"`
	ValueEncoding string          `json:"value_encoding"`
	TTL           json.RawMessage `json:"ttl"`
}

// keyAnswer is the answer to a put or delete.
type keyAnswer struct {
	Key         string `json:"key"`
	KeyEncoding string `json:"key_encoding,omitempty"`
	OK          bool   `json:"ok"`
}

// valueAnswer is the JSON answer to a get.
type valueAnswer struct {
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
	// ExpiresAt is set only for a key with an expiry, so the answer for a
	// key without one is unchanged.
	ExpiresAt string `json:"expires_at,omitempty"`
}

// expiresAtLayout is RFC 3339 in UTC with milliseconds, the precision the
// engines keep an expiry at.
const expiresAtLayout = "2006-01-02T15:04:05.000Z07:00"

// formatExpiresAt is the expires_at field (and X-Expires-At header) for a
// key's expiry: "" when it has none.
func formatExpiresAt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(expiresAtLayout)
}

// writeKeyAnswer answers a put or delete of key with 200 and
// newKeyAnswer(key): built directly when the key needs no escaping in
// JSON, the bytes writeJSON would send, else by writeJSON.
func writeKeyAnswer(w http.ResponseWriter, key string) {
	for i := range len(key) {
		if c := key[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			writeJSON(w, http.StatusOK, newKeyAnswer(key))
			return
		}
	}
	const head, tail = `{"key":"`, `","ok":true}` + "\n"
	buf := make([]byte, 0, len(head)+len(key)+len(tail))
	buf = append(append(append(buf, head...), key...), tail...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

func newKeyAnswer(key string) keyAnswer {
	k, enc := encodeBytes(key)
	return keyAnswer{Key: k, KeyEncoding: enc, OK: true}
}

// keyPathPrefix is the path before the {key} segment.
const keyPathPrefix = "/api/v1/kv/"

// pathKey returns the key: the one path segment after keyPathPrefix,
// percent-decoded, so %2F inside it is a "/" of the key. It reads the
// escaped path because the decoded one cannot tell a%2Fb from a/b.
func pathKey(r *http.Request) (string, error) {
	raw, _ := strings.CutPrefix(r.URL.EscapedPath(), keyPathPrefix)
	if strings.Contains(raw, "/") {
		return "", invalidf("the key path %q has more than one segment: write a / inside a key as %%2F", raw)
	}
	key, err := url.PathUnescape(raw)
	if err != nil {
		return "", invalidf("the key is not validly percent-encoded: %v", err)
	}
	return key, checkKey(key)
}

// handlePut stores a value: a JSON body {"value","value_encoding","ttl"},
// or with Content-Type application/octet-stream the raw body, with the TTL
// in ?ttl=.
func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	query, err := parseQuery(r, "ttl")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var value string
	var ttl int64
	if isRaw(r.Header.Get("Content-Type")) {
		if query.Has("ttl") && query.Get("ttl") == "" {
			err = invalidf("ttl is empty: give a positive whole number of seconds, or leave it out")
		} else if ttl, err = parseTTL("ttl", []byte(query.Get("ttl"))); err == nil {
			value, err = s.readRaw(r)
		}
	} else {
		if query.Has("ttl") {
			err = invalidf("the ttl query parameter is for raw (application/octet-stream) bodies; put ttl in the JSON body")
		} else {
			value, ttl, err = s.readPutJSON(r)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.kv.Put(r.Context(), key, value, time.Duration(ttl)*time.Second); err != nil {
		s.fail(w, r, err)
		return
	}
	writeKeyAnswer(w, key)
}

// readRaw reads a raw body as the value, refusing one over the value limit
// before reading it when its length is declared.
func (s *Server) readRaw(r *http.Request) (string, error) {
	limit := s.opts.MaxValueSize
	if r.ContentLength > int64(limit) {
		return "", tooLargef("value is %d bytes, over the limit of %d", r.ContentLength, limit)
	}
	// One byte past the limit tells "at the limit" from "over it".
	body, err := readBody(r.Body, r.ContentLength, int64(limit)+1)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The client hung up or sent less than its Content-Length:
			// its fault, not a server error to log.
			return "", invalidf("the request body ended after %d bytes, before its declared length", len(body))
		}
		return "", err
	}
	value := bytesToString(body)
	if err := checkValue(value, limit); err != nil {
		return "", err
	}
	return value, nil
}

// readBody reads body to its end, at most max bytes, into one buffer it
// returns (with what had arrived when it fails). The declared length
// sizes the buffer only up to preallocLimit: a client could declare the
// largest length and send nothing, and memory should follow the bytes that
// arrive, not the bytes promised. Reading straight into the buffer, rather
// than through io.Copy, spares a 32 KiB copy buffer per request.
func readBody(body io.Reader, declared, max int64) ([]byte, error) {
	size := int64(512)
	if declared >= 0 {
		// One byte more than declared, so the read that finds the end
		// has room and the buffer never grows for a body as declared.
		size = min(declared+1, preallocLimit)
	}
	buf := make([]byte, 0, min(size, max))
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(cap(buf)), max-int64(len(buf)))))
		}
		room := buf[len(buf):min(int64(cap(buf)), max)]
		n, err := body.Read(room)
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// bytesToString returns b as a string without copying it; b must not be
// written again.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	// SAFETY: callers hand over a buffer nothing else refers to or writes.
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// smallJSONBody is the largest declared JSON body readPutJSON reads whole
// before parsing it.
const smallJSONBody = 64 << 10

func (s *Server) readPutJSON(r *http.Request) (string, int64, error) {
	var value, enc string
	var ttlRaw []byte
	if n := r.ContentLength; n > 0 && n <= smallJSONBody && n <= s.opts.MaxBodySize {
		// A small body of declared length is read whole and, in the usual
		// shape, parsed by parsePutFast; anything else goes through the
		// same decoder as a streamed body, with the same answers.
		body, err := readBody(r.Body, n, n+1)
		if err != nil {
			return "", 0, replayJSONError(body, err)
		}
		var ok bool
		if value, enc, ttlRaw, ok = parsePutFast(body); !ok {
			if value, enc, ttlRaw, err = s.decodePut(bytes.NewReader(body)); err != nil {
				return "", 0, err
			}
		}
	} else {
		var err error
		if value, enc, ttlRaw, err = s.decodePut(r.Body); err != nil {
			return "", 0, err
		}
	}
	value, err := decodeBytes("value", value, enc)
	if err != nil {
		return "", 0, err
	}
	if err := checkValue(value, s.opts.MaxValueSize); err != nil {
		return "", 0, err
	}
	ttl, err := parseTTL("ttl", ttlRaw)
	return value, ttl, err
}

// decodePut decodes a put body with encoding/json: its value, value
// encoding and raw ttl.
func (s *Server) decodePut(body io.Reader) (string, string, []byte, error) {
	var req putRequest
	if err := decodeJSON(body, &req); err != nil {
		return "", "", nil, err
	}
	if req.Value == nil {
		return "", "", nil, invalidf(`value is missing: send {"value": "..."} ("" is a valid value), or a raw body with Content-Type: application/octet-stream`)
	}
	return *req.Value, req.ValueEncoding, req.TTL, nil
}

// replayJSONError is the answer to a small put body whose reading failed
// with readErr after partial arrived: what decoding the body as it
// streamed in would have answered. The decoder checks each byte as it
// comes, so a syntax error (or a complete object with an unknown field)
// among the bytes that did arrive is answered before the failed read;
// otherwise the failed read is.
func replayJSONError(partial []byte, readErr error) error {
	if len(partial) > 0 {
		var req putRequest
		err := decodeJSONRaw(bytes.NewReader(partial), &req)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return jsonError(err)
		}
	}
	return jsonError(readErr)
}

// handleGet answers a key's value as JSON, or as raw bytes when the client
// accepts only application/octet-stream.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err == nil {
		_, err = parseQuery(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	value, meta, err := s.kv.GetWithMeta(r.Context(), key)
	if errors.Is(err, storage.ErrNotFound) {
		s.fail(w, r, newError(codeNotFound, "key not found"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if acceptsOnlyRaw(r.Header.Values("Accept")) {
		h := w.Header()
		h.Set("Content-Type", contentTypeRaw)
		h.Set("Content-Length", strconv.Itoa(len(value)))
		// Stored bytes are the users'; a browser must not sniff them into HTML.
		h.Set("X-Content-Type-Options", "nosniff")
		if exp := formatExpiresAt(meta.ExpiresAt); exp != "" {
			h.Set("X-Expires-At", exp)
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, value)
		return
	}
	k, kenc := encodeBytes(key)
	v, venc := encodeBytes(value)
	writeJSON(w, http.StatusOK, valueAnswer{Key: k, KeyEncoding: kenc, Value: v, ValueEncoding: venc, ExpiresAt: formatExpiresAt(meta.ExpiresAt)})
}

// handleDelete removes a key; deleting a missing key succeeds too.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	key, err := pathKey(r)
	if err == nil {
		_, err = parseQuery(r)
	}
	if err == nil {
		err = s.kv.Delete(r.Context(), key)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeKeyAnswer(w, key)
}

// isRaw reports whether a Content-Type header announces a raw value.
func isRaw(contentType string) bool {
	// The usual headers, without ParseMediaType's allocations.
	switch contentType {
	case contentTypeRaw:
		return true
	case "", "application/json":
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == contentTypeRaw
}

// acceptsOnlyRaw reports whether the Accept headers name
// application/octet-stream and nothing else (parameters such as q=1 aside).
func acceptsOnlyRaw(accept []string) bool {
	seen := false
	for _, header := range accept {
		for part := range strings.SplitSeq(header, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			mt, params, err := mime.ParseMediaType(part)
			if err != nil || mt != contentTypeRaw {
				return false
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
				return false
			}
			seen = true
		}
	}
	return seen
}

// parseQuery parses the query strictly: a malformed escape, an unknown
// parameter or a repeated one is a 400, so a typo never goes unnoticed.
func parseQuery(r *http.Request, allowed ...string) (url.Values, error) {
	if r.URL.RawQuery == "" {
		// No parameters: nothing to check, and no map to allocate (a nil
		// url.Values reads as empty).
		return nil, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, invalidf("malformed query string: %v", err)
	}
	for name, vals := range q {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			if len(allowed) == 0 {
				return nil, invalidf("unknown query parameter %q (this route takes none)", name)
			}
			return nil, invalidf("unknown query parameter %q (this route takes %s)", name, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return nil, invalidf("query parameter %q is given %d times", name, len(vals))
		}
	}
	return q, nil
}
