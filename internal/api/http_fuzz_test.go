package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

// Fuzz targets that drive the real handler (routing, middleware, request
// decoding and the memory engine) with hostile requests. Every answer must
// be below 500 (a panic becomes a 500 in recoverPanics, so this also
// catches panics), and every error must be a JSON error body whose code
// matches its status. Where a request succeeds, its effect is checked by
// reading it back.

// fuzzServerOptions are small so the fuzzer reaches the limits.
var fuzzServerOptions = Options{MaxValueSize: 256, MaxBodySize: 4096, MaxBatchOps: 8}

// serveFuzz sends a request built from a raw target; false when the
// target is not a request URI a server would accept.
func serveFuzz(h http.Handler, method, target, body string, headers ...string) (*httptest.ResponseRecorder, bool) {
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Host != "" || !strings.HasPrefix(target, "/") {
		return nil, false
	}
	req := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
	req.Method = method
	req.URL = u
	req.RequestURI = target
	req.ContentLength = int64(len(body))
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, true
}

// checkAnswer fails on a 5xx, and on an error answer that is not a JSON
// error body with a code matching its status.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, what string) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
	}
	if rec.Code < 400 {
		return
	}
	var eb errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatalf("%s: status %d with a body that is not a JSON error: %q", what, rec.Code, rec.Body)
	}
	if s, ok := codeStatus[eb.Error.Code]; !ok || s != rec.Code || eb.Error.Message == "" {
		t.Fatalf("%s: status %d with error %+v", what, rec.Code, eb.Error)
	}
}

// bytesField reads a JSON string field and its *_encoding sibling the way
// the API documents them.
func bytesField(t *testing.T, obj map[string]json.RawMessage, name string) (string, bool) {
	t.Helper()
	raw, ok := obj[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("field %s is not a string: %s", name, raw)
	}
	var enc string
	if e, ok := obj[name+"_encoding"]; ok {
		_ = json.Unmarshal(e, &enc)
	}
	if enc == "base64" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("field %s: bad base64 %q", name, s)
		}
		return string(b), true
	}
	return s, true
}

var fuzzMethods = []string{"PUT", "POST", "GET", "DELETE", "HEAD", "PATCH", "OPTIONS", "put", ""}

var fuzzContentTypes = []string{"", "application/json", "application/octet-stream",
	"application/octet-stream; charset=binary", "APPLICATION/OCTET-STREAM", "text/plain", "application/octet-stream;;", "multipart/form-data; boundary="}

var fuzzAccepts = []string{"", "application/json", "application/octet-stream", "application/octet-stream;q=0",
	"*/*", "application/octet-stream, text/html", "application/octet-stream;q=x", ","}

// FuzzKeyRoutes sends PUT, POST, GET, DELETE (and others) to
// /api/v1/kv/{key} with an arbitrary escaped key, query, body, Content-Type
// and Accept. A successful put must read back exactly the value sent (raw
// body, or JSON value with its value_encoding); a successful delete must
// leave the key absent.
func FuzzKeyRoutes(f *testing.F) {
	seeds := []struct {
		method     byte
		key, query string
		ctype, acc byte
		body       string
	}{
		{0, "k", "", 1, 0, `{"value":"v"}`},
		{0, "a%2Fb", "", 1, 0, `{"value":"AP8=","value_encoding":"base64","ttl":60}`},
		{1, "k", "ttl=5", 2, 2, "raw bytes"},
		{0, "k", "ttl=", 2, 0, "x"},
		{0, "k", "ttl=0", 2, 0, "x"},
		{0, "k", "ttl=99999999999999999999", 2, 0, "x"},
		{0, "%ff%00", "", 1, 0, `{"value":"\u00e9","ttl":null}`},
		{0, "k", "", 1, 0, `{"value":"v","ttl":1.5}`},
		{0, "k", "", 1, 0, `{"value":"v","value_encoding":"hex"}`},
		{0, "k", "", 1, 0, `{"value":"!!!","value_encoding":"base64"}`},
		{0, "k", "", 1, 0, `{"value":null}`},
		{0, "k", "", 0, 0, `{"val":"v"}`},
		{2, "k", "", 0, 2, ""},
		{2, "k", "x=1", 0, 3, ""},
		{3, "k", "", 0, 0, ""},
		{2, "%zz", "", 0, 0, ""},
		{2, "a/b", "", 0, 0, ""},
		{2, "", "", 0, 0, ""},
		{0, strings.Repeat("k", storage.MaxKeySize+1), "", 1, 0, `{"value":"v"}`},
		{0, "k", "", 1, 0, `{"value":"` + strings.Repeat("v", 300) + `"}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.key, s.query, s.ctype, s.acc, []byte(s.body))
	}
	h := newClient(f, fuzzServerOptions).h
	f.Fuzz(func(t *testing.T, m byte, rawKey, rawQuery string, ct, acc byte, body []byte) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		ctype := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]
		accept := fuzzAccepts[int(acc)%len(fuzzAccepts)]
		target := keyPathPrefix + rawKey
		if rawQuery != "" {
			target += "?" + rawQuery
		}
		rec, ok := serveFuzz(h, method, target, string(body), "Content-Type", ctype, "Accept", accept)
		if !ok {
			return
		}
		what := method + " " + target
		checkAnswer(t, rec, what)
		if rec.Code != http.StatusOK || strings.Contains(rawKey, "/") {
			return
		}
		key, err := url.PathUnescape(rawKey)
		if err != nil {
			t.Fatalf("%s: answered 200 for a key that does not unescape", what)
		}
		switch method {
		case "PUT", "POST":
			want := string(body)
			hasTTL := strings.Contains(rawQuery, "ttl")
			if !isRaw(ctype) {
				// encoding/json's own rules (field names match case-insensitively,
				// the last duplicate wins), then the API's value_encoding.
				var req struct {
					Value         *string         `json:"value"`
					ValueEncoding string          `json:"value_encoding"`
					TTL           json.RawMessage `json:"ttl"`
				}
				if err := json.Unmarshal(body, &req); err != nil || req.Value == nil {
					t.Fatalf("%s: accepted a body without a value: %q", what, body)
				}
				want = *req.Value
				if req.ValueEncoding == "base64" {
					b, err := base64.StdEncoding.DecodeString(want)
					if err != nil {
						t.Fatalf("%s: accepted bad base64 %q", what, want)
					}
					want = string(b)
				} else if req.ValueEncoding != "" && req.ValueEncoding != "utf8" {
					t.Fatalf("%s: accepted value_encoding %q", what, req.ValueEncoding)
				}
				hasTTL = len(req.TTL) > 0 && string(req.TTL) != "null"
			}
			got, ok := serveFuzz(h, "GET", keyPathPrefix+rawKey, "")
			if !ok || got.Code != http.StatusOK {
				if hasTTL && got != nil && got.Code == http.StatusNotFound {
					return // a one-second TTL may have run out
				}
				t.Fatalf("%s: read back answered %v", what, got)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(got.Body.Bytes(), &obj); err != nil {
				t.Fatalf("%s: read back: %v", what, err)
			}
			if k, _ := bytesField(t, obj, "key"); k != key {
				t.Fatalf("%s: read back key %q, want %q", what, k, key)
			}
			if v, _ := bytesField(t, obj, "value"); v != want {
				t.Fatalf("%s: read back %q, want %q", what, v, want)
			}
		case "DELETE":
			if got, ok := serveFuzz(h, "GET", keyPathPrefix+rawKey, ""); !ok || got.Code != http.StatusNotFound {
				t.Fatalf("%s: the key is still there after a delete", what)
			}
		}
	})
}

// fuzzScanKeys are stored before FuzzScanQuery runs; some are not UTF-8.
var fuzzScanKeys = []string{"a", "a/1", "a/2", "ab", "b", "b\x00", "b\xff", "\xff", "\xff\xff", "user:1", "user:2", "user:10"}

// FuzzScanQuery sends GET /api/v1/kv with an arbitrary query. A page it
// answers must be exactly the stored keys with the prefix, from start
// (inclusive, never before the prefix), in byte order, at most limit of
// them, with next naming the first key left out.
func FuzzScanQuery(f *testing.F) {
	for _, q := range []string{"", "prefix=a", "prefix=a&limit=1", "prefix=a&start=a%2F2", "start=b&limit=2",
		"prefix=%ff", "prefix=%ff%ff", "limit=0", "limit=1001", "limit=-1", "limit=1e3", "limit=+5", "prefix=a&prefix=b",
		"x=1", "prefix=%zz", "start=" + strings.Repeat("k", storage.MaxKeySize+1), "prefix=user:&limit=2", "prefix=b&start=a", ";"} {
		f.Add(q)
	}
	c := newClient(f, fuzzServerOptions)
	for i, k := range fuzzScanKeys {
		c.do("PUT", keyPathPrefix+url.PathEscape(k), `{"value":"v`+string(rune('0'+i))+`"}`)
	}
	stored := map[string]string{}
	for i, k := range fuzzScanKeys {
		stored[k] = "v" + string(rune('0'+i))
	}
	sorted := append([]string(nil), fuzzScanKeys...)
	sort.Strings(sorted)
	f.Fuzz(func(t *testing.T, rawQuery string) {
		target := "/api/v1/kv?" + rawQuery
		rec, ok := serveFuzz(c.h, "GET", target, "")
		if !ok {
			return
		}
		checkAnswer(t, rec, target)
		if rec.Code != http.StatusOK {
			return
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			t.Fatalf("%s: answered 200 to a malformed query", target)
		}
		prefix, start := q.Get("prefix"), q.Get("start")
		start = max(start, prefix)
		limit := 100
		if q.Has("limit") {
			if _, err := json.Number(q.Get("limit")).Int64(); err != nil {
				t.Fatalf("%s: answered 200 to limit %q", target, q.Get("limit"))
			}
			n, _ := json.Number(q.Get("limit")).Int64()
			limit = int(n)
		}
		var want []string
		for _, k := range sorted {
			if strings.HasPrefix(k, prefix) && k >= start {
				want = append(want, k)
			}
		}
		var page struct {
			Items        []map[string]json.RawMessage `json:"items"`
			Next         *string                      `json:"next"`
			NextEncoding string                       `json:"next_encoding"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if len(page.Items) > limit {
			t.Fatalf("%s: %d items over limit %d", target, len(page.Items), limit)
		}
		for i, it := range page.Items {
			k, _ := bytesField(t, it, "key")
			v, _ := bytesField(t, it, "value")
			if i >= len(want) || k != want[i] || v != stored[k] {
				t.Fatalf("%s: item %d is %q=%q, want the keys %q", target, i, k, v, want)
			}
		}
		rest := want[len(page.Items):]
		switch {
		case len(rest) == 0 && page.Next != nil:
			t.Fatalf("%s: next %q after the last key", target, *page.Next)
		case len(rest) > 0 && page.Next == nil:
			t.Fatalf("%s: no next, but %q are left", target, rest)
		case len(rest) > 0:
			next := *page.Next
			if page.NextEncoding == "base64" {
				b, _ := base64.StdEncoding.DecodeString(next)
				next = string(b)
			}
			if next != rest[0] {
				t.Fatalf("%s: next %q, want %q", target, next, rest[0])
			}
		}
	})
}

// FuzzBatchHTTP posts arbitrary bodies to /api/v1/kv/batch, with an
// arbitrary query: decoding and running a batch answers below 500.
func FuzzBatchHTTP(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add("", []byte(s))
	}
	f.Add("x=1", []byte(batchSeeds[0]))
	h := newClient(f, fuzzServerOptions).h
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte) {
		target := "/api/v1/kv/batch"
		if rawQuery != "" {
			target += "?" + rawQuery
		}
		if rec, ok := serveFuzz(h, "POST", target, string(body), "Content-Type", "application/json"); ok {
			checkAnswer(t, rec, "POST "+target)
		}
	})
}

// FuzzTxnHTTP posts arbitrary bodies to /api/v1/txn: decoding and running
// a transaction answers below 500; a 200 is a JSON object.
func FuzzTxnHTTP(f *testing.F) {
	for _, s := range txnSeeds {
		f.Add([]byte(s))
	}
	h := newClient(f, fuzzServerOptions).h
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, ok := serveFuzz(h, "POST", "/api/v1/txn", string(body), "Content-Type", "application/json")
		if !ok {
			return
		}
		checkAnswer(t, rec, "POST /api/v1/txn")
		if rec.Code == http.StatusOK && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("txn answered 200 with %q", rec.Body)
		}
	})
}

// FuzzRequestHeaders sends requests with an arbitrary Authorization
// header, method and path to a server that requires a token: only the
// exact bearer token gets past authentication (on every route but
// /health), and nothing answers 5xx.
func FuzzRequestHeaders(f *testing.F) {
	const token = "s3cret-token"
	for _, s := range []struct {
		auth, path string
		m          byte
	}{
		{"Bearer " + token, "/api/v1/stats", 2},
		{"bearer  " + token + " ", "/api/v1/kv/k", 2},
		{"Bearer", "/api/v1/kv", 2},
		{"Basic " + token, "/metrics", 2},
		{"Bearer " + token + "x", "/health", 2},
		{"", "/nope", 0},
		{"Bearer " + token, "/api/v1/kv/batch", 1},
		{"Bearer \x00", "/api/v1/version", 5},
	} {
		f.Add(s.auth, s.path, s.m)
	}
	opts := fuzzServerOptions
	opts.AuthToken = token
	h := newClient(f, opts).h
	f.Fuzz(func(t *testing.T, auth, path string, m byte) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		rec, ok := serveFuzz(h, method, path, "", "Authorization", auth)
		if !ok {
			return
		}
		checkAnswer(t, rec, method+" "+path)
		scheme, got, _ := strings.Cut(auth, " ")
		authorised := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(got) == token
		u, _ := url.ParseRequestURI(path)
		// Without the token every route but /health answers 401; the mux may
		// first redirect a path that needs cleaning (3xx).
		if !authorised && u.Path != "/health" && rec.Code != http.StatusUnauthorized && (rec.Code < 300 || rec.Code > 399) {
			t.Fatalf("%s %s with Authorization %q: status %d without the token", method, path, auth, rec.Code)
		}
	})
}
