package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// putBodies are put bodies of every shape: the usual ones parsePutFast
// takes, and ones it must leave to encoding/json.
var putBodies = []string{
	`{"value":"v"}`,
	` {"value" : "hello world"} `,
	"\n{\t\"value\":\"\",\r\n\"ttl\":null}\n",
	`{"value":"aGk=","value_encoding":"base64"}`,
	`{"value_encoding":"utf8","value":"x","ttl":60}`,
	`{"ttl":0,"value":"x"}`,
	`{"value":"héllo ✓"}`,
	// Left to encoding/json:
	`{"value":"a\"b"}`,
	`{"value":"a\u0041"}`,
	`{"value":"\xff\xfe"}`,
	"{\"value\":\"a\x01b\"}",
	`{"Value":"x"}`,
	`{"value":"x","value":"y"}`,
	`{"value":null}`,
	`{"value":1}`,
	`{"value":"x","ttl":"60"}`,
	`{"value":"x","ttl":-1}`,
	`{"value":"x","ttl":1.5}`,
	`{"value":"x","ttl":1e3}`,
	`{"value":"x","ttl":012}`,
	`{"value":"x","ttl":nullx}`,
	`{"value":"x","extra":1}`,
	`{"value":"x"}{}`,
	`{"value":"x"} x`,
	`{"value":"x",}`,
	`{"value":"x"`,
	`{"value":"x`,
	`{}`,
	`{"ttl":5}`,
	`[]`,
	`null`,
	``,
	`{"value" "x"}`,
}

// TestParsePutFastAgreesWithDecoder checks that whatever parsePutFast
// takes, encoding/json decodes to the same value, encoding and ttl, and
// that it does take the usual shapes.
func TestParsePutFastAgreesWithDecoder(t *testing.T) {
	s := New(newEngine(t), Options{})
	taken := 0
	for _, body := range putBodies {
		checkPutFast(t, s, []byte(body))
		if _, _, _, ok := parsePutFast([]byte(body)); ok {
			taken++
		}
	}
	if taken != 7 {
		t.Fatalf("parsePutFast took %d of the bodies, want the first 7", taken)
	}
}

func checkPutFast(t *testing.T, s *Server, body []byte) {
	t.Helper()
	value, enc, ttl, ok := parsePutFast(body)
	if !ok {
		return
	}
	wValue, wEnc, wTTL, err := s.decodePut(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsePutFast took %q, which encoding/json refuses: %v", body, err)
	}
	if value != wValue || enc != wEnc || !bytes.Equal(ttl, wTTL) {
		t.Fatalf("%q: parsePutFast gave (%q, %q, %q), encoding/json (%q, %q, %q)", body, value, enc, ttl, wValue, wEnc, wTTL)
	}
}

func FuzzPutFast(f *testing.F) {
	for _, b := range putBodies {
		f.Add([]byte(b))
	}
	s := New(newEngine(f), Options{})
	f.Fuzz(func(t *testing.T, body []byte) { checkPutFast(t, s, body) })
}

// TestPutAnswersAsBefore sends JSON puts, each with a declared length (the
// whole-body path) and chunked (the streamed one), and wants the same
// status and message from both.
func TestPutAnswersAsBefore(t *testing.T) {
	c := newClient(t, Options{})
	for _, body := range putBodies {
		sized := c.do("PUT", "/api/v1/kv/k", body, "Content-Type", "application/json")
		req := func() *http.Request {
			r, _ := http.NewRequest("PUT", "/api/v1/kv/k", struct{ *strings.Reader }{strings.NewReader(body)})
			r.Header.Set("Content-Type", "application/json")
			return r
		}()
		if req.ContentLength != 0 && req.ContentLength != -1 {
			t.Fatalf("the streamed request declares %d bytes", req.ContentLength)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		streamed := httptest.NewRecorder()
		c.h.ServeHTTP(streamed, req)
		if body == "" {
			// Without a declared length an empty body reads as none.
			continue
		}
		if sized.Code != streamed.Code || sized.Body.String() != streamed.Body.String() {
			t.Errorf("%q: with its length %d %s, streamed %d %s", body, sized.Code, sized.Body, streamed.Code, streamed.Body)
		}
	}
}

// TestWriteKeyAnswerMatchesWriteJSON compares the directly built answer
// with writeJSON's for keys of every kind.
func TestWriteKeyAnswerMatchesWriteJSON(t *testing.T) {
	for _, key := range []string{"k", "key123", "a/b c", "<&>", "~!@#$%^*()_+{}|:?`", "a\"b", `a\b`, "tab\there", "é", "\xff", "\u2028", "\x7f"} {
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		writeKeyAnswer(got, key)
		writeJSON(want, http.StatusOK, newKeyAnswer(key))
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("key %q: %d %q, writeJSON %d %q", key, got.Code, got.Body, want.Code, want.Body)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "X-Content-Type-Options"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Errorf("key %q: %s %q, writeJSON %q", key, h, got.Header().Get(h), want.Header().Get(h))
			}
		}
	}
}

// deadlineRecorder is a ResponseWriter that can set a write deadline.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	set bool
}

func (d *deadlineRecorder) SetWriteDeadline(time.Time) error {
	d.set = true
	return nil
}

// TestRecorderReachesTheConnection checks that http.ResponseController
// reaches through the status recorder the handlers get, as the checkpoint
// stream's per-write deadline needs.
func TestRecorderReachesTheConnection(t *testing.T) {
	inner := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	rec := &statusRecorder{ResponseWriter: inner}
	if err := http.NewResponseController(rec).SetWriteDeadline(time.Now().Add(time.Second)); err != nil || !inner.set {
		t.Fatalf("SetWriteDeadline through the recorder: err %v, reached the writer %v", err, inner.set)
	}
}
