package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPutGetDelete(t *testing.T) {
	c := newClient(t, Options{})
	for _, method := range []string{"PUT", "POST"} {
		got := ok[keyJSON](c, method, "/api/v1/kv/greeting", `{"value":"hello <world> & \u00e9"}`)
		if got != (keyJSON{Key: "greeting", OK: true}) {
			t.Fatalf("%s answered %+v", method, got)
		}
		v := ok[valueJSON](c, "GET", "/api/v1/kv/greeting", "")
		if v != (valueJSON{Key: "greeting", Value: "hello <world> & é"}) {
			t.Fatalf("GET after %s answered %+v", method, v)
		}
	}
	// An empty value is a value, not an absence.
	ok[keyJSON](c, "PUT", "/api/v1/kv/empty", `{"value":""}`)
	if v, found := c.get("empty"); !found || v != "" {
		t.Fatalf("empty value: %q, %v", v, found)
	}
	// A curl -d body arrives as form-urlencoded; anything not raw is JSON.
	ok[keyJSON](c, "PUT", "/api/v1/kv/form", `{"value":"f"}`, "Content-Type", "application/x-www-form-urlencoded")

	for range 2 { // deleting twice is fine: DELETE is idempotent
		if got := ok[keyJSON](c, "DELETE", "/api/v1/kv/greeting", ""); got != (keyJSON{Key: "greeting", OK: true}) {
			t.Fatalf("DELETE answered %+v", got)
		}
	}
	wantError(t, c.do("GET", "/api/v1/kv/greeting", ""), http.StatusNotFound, codeNotFound)
	// A missing key stays a JSON error even when only raw bytes are accepted.
	wantError(t, c.do("GET", "/api/v1/kv/greeting", "", "Accept", "application/octet-stream"), http.StatusNotFound, codeNotFound)
}

func TestKeysArePercentDecodedSegments(t *testing.T) {
	c := newClient(t, Options{})
	keys := []string{"a/b", "/", "a b", "100%", "x?y#z", "..", "a/../b", "ünïcødé", "\x00\xff\x01", "+plus"}
	for i, key := range keys {
		c.put(escapeKey(key), fmt.Sprint("v", i))
	}
	for i, key := range keys {
		rec := c.do("GET", "/api/v1/kv/"+escapeKey(key), "")
		if rec.Code != http.StatusOK {
			t.Fatalf("key %q: status %d %s", key, rec.Code, rec.Body)
		}
		v := decode[valueJSON](t, rec)
		gotKey := v.Key
		if v.KeyEncoding == encodingBase64 {
			b, _ := base64.StdEncoding.DecodeString(v.Key)
			gotKey = string(b)
		}
		if gotKey != key || v.Value != fmt.Sprint("v", i) {
			t.Fatalf("key %q answered %+v", key, v)
		}
	}
	// The scan sees the decoded keys, so %2F really is a "/" of the key.
	page := ok[pageJSON](c, "GET", "/api/v1/kv?prefix=a%2F", "")
	if len(page.Items) != 2 || page.Items[0].Key != "a/../b" || page.Items[1].Key != "a/b" {
		t.Fatalf("scan of a/: %+v", page.Items)
	}
	// PUT on .../batch stores the key "batch"; only POST there is the batch route.
	c.put("batch", "not a batch")
	if v, _ := c.get("batch"); v != "not a batch" {
		t.Fatalf("key batch = %q", v)
	}
}

// escapeKey writes key as one path segment. Dots are escaped too: a
// segment of "." or ".." would be removed by path cleaning.
func escapeKey(key string) string {
	return strings.ReplaceAll(url.PathEscape(key), ".", "%2E")
}

func TestKeyLimits(t *testing.T) {
	c := newClient(t, Options{})
	longest := strings.Repeat("k", 65535)
	c.put(longest, "v")
	if v, found := c.get(longest); !found || v != "v" {
		t.Fatalf("65535-byte key: %q %v", v, found)
	}
	// Binary keys travel percent-encoded, at three bytes per byte.
	binary := strings.Repeat("\xfe", 65535)
	c.put(url.PathEscape(binary), "b")
	wantError(t, c.do("PUT", "/api/v1/kv/"+longest+"k", `{"value":"v"}`), http.StatusBadRequest, codeInvalidArgument, "65536 bytes")
	wantError(t, c.do("GET", "/api/v1/kv/"+longest+"k", ""), http.StatusBadRequest, codeInvalidArgument)
	wantError(t, c.do("DELETE", "/api/v1/kv/"+longest+"k", ""), http.StatusBadRequest, codeInvalidArgument)
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		wantError(t, c.do(method, "/api/v1/kv/", `{"value":"v"}`), http.StatusBadRequest, codeInvalidArgument, "key is empty")
	}
	wantError(t, c.do("GET", "/api/v1/kv/a/b", ""), http.StatusBadRequest, codeInvalidArgument, "%2F")
	wantError(t, c.do("PUT", "/api/v1/kv/a/", `{"value":"v"}`), http.StatusBadRequest, codeInvalidArgument, "%2F")
}

func TestRawValues(t *testing.T) {
	c := newClient(t, Options{})
	value := "\x00\x01\xff\xfe binary \x00"
	ok[keyJSON](c, "PUT", "/api/v1/kv/raw", value, "Content-Type", "application/octet-stream")

	for _, accept := range []string{"application/octet-stream", "application/octet-stream; q=1", " application/octet-stream "} {
		rec := c.do("GET", "/api/v1/kv/raw", "", "Accept", accept)
		if rec.Code != http.StatusOK || rec.Body.String() != value {
			t.Fatalf("Accept %q: status %d body %q", accept, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/octet-stream" {
			t.Fatalf("Accept %q: Content-Type %q", accept, ct)
		}
	}
	// Accepting anything besides raw bytes gets JSON, base64 for non-UTF-8.
	for _, accept := range []string{"", "application/json", "application/octet-stream, application/json", "*/*", "application/octet-stream;q=0"} {
		v := ok[valueJSON](c, "GET", "/api/v1/kv/raw", "", "Accept", accept)
		raw, err := base64.StdEncoding.DecodeString(v.Value)
		if v.ValueEncoding != encodingBase64 || err != nil || string(raw) != value {
			t.Fatalf("Accept %q: %+v (%v)", accept, v, err)
		}
	}
	// A raw body that happens to be JSON is stored as is.
	ok[keyJSON](c, "POST", "/api/v1/kv/rawjson", `{"value":"x"}`, "Content-Type", "application/octet-stream; charset=binary")
	if v, _ := c.get("rawjson"); v != `{"value":"x"}` {
		t.Fatalf("raw JSON body stored as %q", v)
	}
	// An empty raw body is the empty value.
	ok[keyJSON](c, "PUT", "/api/v1/kv/rawempty", "", "Content-Type", "application/octet-stream")
	if v, found := c.get("rawempty"); !found || v != "" {
		t.Fatalf("empty raw value: %q %v", v, found)
	}
}

func TestBase64RoundTrip(t *testing.T) {
	c := newClient(t, Options{})
	value := string([]byte{0xff, 0x00, 0xc3, 0x28, 'a'}) // not UTF-8
	enc := base64.StdEncoding.EncodeToString([]byte(value))
	ok[keyJSON](c, "PUT", "/api/v1/kv/b64", `{"value":"`+enc+`","value_encoding":"base64"}`)
	rec := c.do("GET", "/api/v1/kv/b64", "", "Accept", "application/octet-stream")
	if rec.Body.String() != value {
		t.Fatalf("raw read of a base64 put: %q", rec.Body)
	}
	v := ok[valueJSON](c, "GET", "/api/v1/kv/b64", "")
	if v.Value != enc || v.ValueEncoding != encodingBase64 {
		t.Fatalf("JSON read: %+v", v)
	}
	// Valid UTF-8 sent as base64 comes back plain: the encoding is chosen per answer.
	ok[keyJSON](c, "PUT", "/api/v1/kv/text", `{"value":"aGVsbG8=","value_encoding":"base64"}`)
	if v := ok[valueJSON](c, "GET", "/api/v1/kv/text", ""); v.Value != "hello" || v.ValueEncoding != "" {
		t.Fatalf("UTF-8 value: %+v", v)
	}
	ok[keyJSON](c, "PUT", "/api/v1/kv/utf8", `{"value":"plain","value_encoding":"utf8"}`)
	// A binary key comes back base64 with key_encoding.
	got := ok[keyJSON](c, "PUT", "/api/v1/kv/%FF%00", `{"value":"v"}`)
	if got.KeyEncoding != encodingBase64 || got.Key != base64.StdEncoding.EncodeToString([]byte{0xff, 0}) {
		t.Fatalf("binary key answer: %+v", got)
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	c := newClient(t, Options{})
	ok[keyJSON](c, "PUT", "/api/v1/kv/json-ttl", `{"value":"v","ttl":1}`)
	ok[keyJSON](c, "PUT", "/api/v1/kv/raw-ttl?ttl=1", "v", "Content-Type", "application/octet-stream")
	ok[resultsJSON](c, "POST", "/api/v1/kv/batch", `{"operations":[{"op":"put","key":"batch-ttl","value":"v","ttl":1}],"atomic":true}`)
	ok[resultsJSON](c, "POST", "/api/v1/kv/batch", `{"operations":[{"op":"put","key":"seq-ttl","value":"v","ttl":1}]}`)
	ok[keyJSON](c, "PUT", "/api/v1/kv/long-ttl", `{"value":"v","ttl":3600}`)
	keys := []string{"json-ttl", "raw-ttl", "batch-ttl", "seq-ttl"}
	for _, k := range keys {
		if _, found := c.get(k); !found {
			t.Fatalf("%s gone before its TTL", k)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	for _, k := range keys {
		if _, found := c.get(k); found {
			t.Fatalf("%s still there after its TTL", k)
		}
	}
	if _, found := c.get("long-ttl"); !found {
		t.Fatal("long-ttl expired early")
	}
}

func TestPutErrors(t *testing.T) {
	c := newClient(t, Options{MaxValueSize: 16, MaxBodySize: 64})
	cases := []struct {
		name, target, body string
		headers            []string
		status             int
		code               string
		msg                string
	}{
		{"empty body", "/api/v1/kv/k", "", nil, 400, codeInvalidArgument, "empty"},
		{"bad JSON", "/api/v1/kv/k", `{"value":`, nil, 400, codeInvalidArgument, "invalid JSON"},
		{"syntax", "/api/v1/kv/k", `{"value" "v"}`, nil, 400, codeInvalidArgument, "at byte"},
		{"not an object", "/api/v1/kv/k", `["v"]`, nil, 400, codeInvalidArgument, "invalid JSON"},
		{"value not a string", "/api/v1/kv/k", `{"value":5}`, nil, 400, codeInvalidArgument, `"value" must be a string`},
		{"missing value", "/api/v1/kv/k", `{"ttl":5}`, nil, 400, codeInvalidArgument, "value is missing"},
		{"null value", "/api/v1/kv/k", `{"value":null}`, nil, 400, codeInvalidArgument, "value is missing"},
		{"unknown field", "/api/v1/kv/k", `{"valeu":"v"}`, nil, 400, codeInvalidArgument, "valeu"},
		{"trailing data", "/api/v1/kv/k", `{"value":"v"} {}`, nil, 400, codeInvalidArgument, "after the JSON object"},
		{"ttl zero", "/api/v1/kv/k", `{"value":"v","ttl":0}`, nil, 400, codeInvalidArgument, "ttl"},
		{"ttl negative", "/api/v1/kv/k", `{"value":"v","ttl":-1}`, nil, 400, codeInvalidArgument, "ttl"},
		{"ttl fraction", "/api/v1/kv/k", `{"value":"v","ttl":1.5}`, nil, 400, codeInvalidArgument, "whole number"},
		{"ttl exponent", "/api/v1/kv/k", `{"value":"v","ttl":1e3}`, nil, 400, codeInvalidArgument, "whole number"},
		{"ttl string", "/api/v1/kv/k", `{"value":"v","ttl":"10"}`, nil, 400, codeInvalidArgument, "whole number"},
		{"ttl huge", "/api/v1/kv/k", `{"value":"v","ttl":99999999999999999999}`, nil, 400, codeInvalidArgument, "too large"},
		{"ttl query on JSON", "/api/v1/kv/k?ttl=5", `{"value":"v"}`, nil, 400, codeInvalidArgument, "ttl query parameter"},
		{"raw ttl zero", "/api/v1/kv/k?ttl=0", "v", []string{"Content-Type", "application/octet-stream"}, 400, codeInvalidArgument, "ttl"},
		{"raw ttl empty", "/api/v1/kv/k?ttl=", "v", []string{"Content-Type", "application/octet-stream"}, 400, codeInvalidArgument, "ttl is empty"},
		{"raw ttl word", "/api/v1/kv/k?ttl=soon", "v", []string{"Content-Type", "application/octet-stream"}, 400, codeInvalidArgument, "ttl"},
		{"unknown query", "/api/v1/kv/k?tl=5", `{"value":"v"}`, nil, 400, codeInvalidArgument, `"tl"`},
		{"repeated query", "/api/v1/kv/k?ttl=5&ttl=6", "v", []string{"Content-Type", "application/octet-stream"}, 400, codeInvalidArgument, "2 times"},
		{"malformed query", "/api/v1/kv/k?ttl=%zz", "v", []string{"Content-Type", "application/octet-stream"}, 400, codeInvalidArgument, "malformed"},
		{"bad base64", "/api/v1/kv/k", `{"value":"@@","value_encoding":"base64"}`, nil, 400, codeInvalidArgument, "base64"},
		{"bad encoding", "/api/v1/kv/k", `{"value":"v","value_encoding":"hex"}`, nil, 400, codeInvalidArgument, "hex"},
		{"value too large", "/api/v1/kv/k", `{"value":"12345678901234567"}`, nil, 413, codeTooLarge, "over the limit of 16"},
		{"raw value too large", "/api/v1/kv/k", "12345678901234567", []string{"Content-Type", "application/octet-stream"}, 413, codeTooLarge, "limit of 16"},
		{"body too large", "/api/v1/kv/k", `{"value":"` + strings.Repeat("x", 100) + `"}`, nil, 413, codeTooLarge, "64 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, c.do("PUT", tc.target, tc.body, tc.headers...), tc.status, tc.code, tc.msg)
		})
	}
	if _, found := c.get("k"); found {
		t.Fatal("a rejected put wrote the key")
	}
	// Unknown query parameters on get and delete are errors too.
	wantError(t, c.do("GET", "/api/v1/kv/k?x=1", ""), 400, codeInvalidArgument, `"x"`)
	wantError(t, c.do("DELETE", "/api/v1/kv/k?x=1", ""), 400, codeInvalidArgument, `"x"`)
}

func TestRawBodyBeyondBodyLimit(t *testing.T) {
	// With a body limit below the value limit, the body limit answers.
	c := newClient(t, Options{MaxValueSize: 1 << 20, MaxBodySize: 10})
	wantError(t, c.do("PUT", "/api/v1/kv/k", strings.Repeat("x", 11), "Content-Type", "application/octet-stream"),
		413, codeTooLarge, "10 bytes")
}

// TestGetExpiresAt checks that a read names a key's expiry (RFC 3339 UTC
// with milliseconds, within the TTL of the write) and leaves the field and
// header out for a key without one, so those answers are as before.
func TestGetExpiresAt(t *testing.T) {
	c := newClient(t, Options{})
	before := time.Now()
	ok[keyJSON](c, "PUT", "/api/v1/kv/expiring", `{"value":"v","ttl":600}`)
	after := time.Now()
	ok[keyJSON](c, "PUT", "/api/v1/kv/lasting", `{"value":"v"}`)

	rec := c.do("GET", "/api/v1/kv/expiring", "")
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET expiring: %d %s (%v)", rec.Code, rec.Body, err)
	}
	field, _ := got["expires_at"].(string)
	if !expiresAtPattern.MatchString(field) {
		t.Fatalf("expires_at %q is not RFC 3339 UTC with milliseconds", field)
	}
	at, err := time.Parse(time.RFC3339, field)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := before.Add(600*time.Second).Truncate(time.Millisecond), after.Add(600*time.Second+time.Millisecond)
	if at.Before(lo) || at.After(hi) {
		t.Fatalf("expires_at %s is outside [%s, %s]", at, lo, hi)
	}
	raw := c.do("GET", "/api/v1/kv/expiring", "", "Accept", "application/octet-stream")
	if h := raw.Header().Get("X-Expires-At"); h != field {
		t.Fatalf("raw read's X-Expires-At %q, want %q", h, field)
	}

	rec = c.do("GET", "/api/v1/kv/lasting", "")
	if rec.Body.String() != `{"key":"lasting","value":"v"}`+"\n" && rec.Body.String() != `{"key":"lasting","value":"v"}` {
		t.Fatalf("a key without expiry answers %q", rec.Body)
	}
	raw = c.do("GET", "/api/v1/kv/lasting", "", "Accept", "application/octet-stream")
	if _, has := raw.Header()["X-Expires-At"]; has {
		t.Fatalf("a key without expiry has X-Expires-At %q", raw.Header().Get("X-Expires-At"))
	}
	// Rewriting without a TTL drops the expiry, and the field with it.
	ok[keyJSON](c, "PUT", "/api/v1/kv/expiring", `{"value":"v"}`)
	if strings.Contains(c.do("GET", "/api/v1/kv/expiring", "").Body.String(), "expires_at") {
		t.Fatal("expires_at still answered after a put without a TTL")
	}
}

var expiresAtPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
