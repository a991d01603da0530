package api

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// encodingBase64 is the value of a *_encoding field whose sibling holds
// base64 instead of the bytes themselves.
const encodingBase64 = "base64"

// encodeBytes returns s as a JSON string field and the encoding to announce:
// valid UTF-8 goes as is (""), anything else as base64, because a JSON
// string cannot carry arbitrary bytes.
func encodeBytes(s string) (string, string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), encodingBase64
}

// encodedLen is the length of encodeBytes(s)'s string, without encoding it.
func encodedLen(s string) int {
	if utf8.ValidString(s) {
		return len(s)
	}
	return base64.StdEncoding.EncodedLen(len(s))
}

// decodeBytes undoes encodeBytes for a request field named field whose
// encoding field said enc ("", "utf8" or "base64").
func decodeBytes(field, s, enc string) (string, error) {
	switch enc {
	case "", "utf8":
		return s, nil
	case encodingBase64:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", invalidf("%s is not valid base64: %v", field, err)
		}
		return string(b), nil
	default:
		return "", invalidf("%s_encoding %q is not utf8 or base64", field, enc)
	}
}

// decodeJSON reads exactly one JSON object from body into v, rejecting
// unknown fields (a misspelt field is an error, not silently ignored) and
// trailing data.
func decodeJSON(body io.Reader, v any) error {
	if err := decodeJSONRaw(body, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// bodyReaders recycles the buffered readers decodeJSONRaw reads bodies
// through (4 KiB each).
var bodyReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// decodeJSONRaw is decodeJSON with the decoder's and the body's own
// errors, not yet turned into answers.
func decodeJSONRaw(body io.Reader, v any) error {
	br := bodyReaders.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() {
		br.Reset(nil)
		bodyReaders.Put(br)
	}()
	if err := expectObject(br); err != nil {
		return err
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return err
		}
		return invalidf("invalid JSON body: unexpected data after the JSON object")
	}
	return nil
}

// parsePutFast parses the usual put body, such as {"value":"..."}, without
// encoding/json: one object whose members are among "value",
// "value_encoding" and "ttl", each at most once, "value" present, the
// strings free of escapes, control characters and invalid UTF-8, the ttl
// null or a plain number, only JSON white space around, nothing after.
// For such a body it returns what encoding/json would decode; for any
// other it reports !ok, and the caller decodes it with encoding/json,
// which also words the errors. The strings returned share b's memory.
func parsePutFast(b []byte) (value, enc string, ttl []byte, ok bool) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return "", "", nil, false
	}
	var seenValue, seenEnc, seenTTL bool
	i = skipSpace(b, i+1)
	for {
		name, j, good := fastString(b, i)
		if !good {
			return "", "", nil, false
		}
		i = skipSpace(b, j)
		if i == len(b) || b[i] != ':' {
			return "", "", nil, false
		}
		i = skipSpace(b, i+1)
		switch {
		case name == "value" && !seenValue:
			seenValue = true
			value, i, good = fastString(b, i)
		case name == "value_encoding" && !seenEnc:
			seenEnc = true
			enc, i, good = fastString(b, i)
		case name == "ttl" && !seenTTL:
			seenTTL = true
			ttl, i, good = fastTTL(b, i)
		default:
			return "", "", nil, false
		}
		if !good {
			return "", "", nil, false
		}
		i = skipSpace(b, i)
		if i == len(b) {
			return "", "", nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			if skipSpace(b, i+1) != len(b) || !seenValue {
				return "", "", nil, false
			}
			return value, enc, ttl, true
		default:
			return "", "", nil, false
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// fastString reads the JSON string at b[i] when it needs no unescaping
// and is valid UTF-8 (encoding/json would replace invalid bytes), and
// returns it and the index after its closing quote.
func fastString(b []byte, i int) (string, int, bool) {
	if i == len(b) || b[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(b[start:j]) {
				return "", 0, false
			}
			return bytesToString(b[start:j]), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", 0, false
}

// fastTTL reads a ttl of null or a number of plain digits (0, or no
// leading zero), the bytes a json.RawMessage would hold.
func fastTTL(b []byte, i int) ([]byte, int, bool) {
	if bytes.HasPrefix(b[i:], []byte("null")) {
		return b[i : i+4], i + 4, true
	}
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == i || (b[i] == '0' && j > i+1) {
		return nil, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return nil, 0, false
	}
	return b[i:j], j, true
}

// expectObject checks that the body starts with "{" after any white space:
// a null body would otherwise decode into the zero request and pass.
func expectObject(br *bufio.Reader) error {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return jsonError(err)
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return br.UnreadByte()
		default:
			return invalidf("invalid JSON body: it must be a JSON object, starting with {")
		}
	}
}

// jsonError turns a decoding error into an answer: 413 when the body limit
// cut the body short, else 400 naming what was wrong and where.
func jsonError(err error) error {
	var tooBig *http.MaxBytesError
	var ae *apiError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig), errors.As(err, &ae):
		return err
	case errors.Is(err, io.EOF):
		return invalidf("invalid JSON body: the body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("invalid JSON body: it ends too soon")
	case errors.As(err, &syntax):
		return invalidf("invalid JSON body at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		if typ.Field == "" || typ.Type == nil {
			return invalidf("invalid JSON body: unexpected %s", typ.Value)
		}
		return invalidf("invalid JSON body: field %q must be %s, got %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	default:
		return invalidf("invalid JSON body: %v", err)
	}
}

// jsonKind names a Go kind in JSON terms for error messages.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "ptr":
		return "a value"
	default:
		return "a number"
	}
}

// parseTTL reads a ttl given as JSON (raw) or as a query parameter: a
// positive whole number of seconds. It returns 0 when raw is empty or null.
func parseTTL(field string, raw []byte) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	const maxTTL = math.MaxInt64 / int64(time.Second) // the most whole seconds a time.Duration holds
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, invalidf("%s must be a positive whole number of seconds, got %s", field, raw)
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > maxTTL {
		return 0, invalidf("%s %s is too large (at most %d seconds)", field, raw, maxTTL)
	}
	if n == 0 {
		return 0, invalidf("%s must be a positive whole number of seconds, got 0", field)
	}
	return n, nil
}

// writeJSON answers v as JSON with status. Encoding into a buffer first
// means a value that cannot be encoded becomes a clean 500, not half a body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fallback := errorBody{Error: errorDetail{Code: codeInternal, Message: "encoding the answer: " + err.Error()}}
		_ = json.NewEncoder(&buf).Encode(fallback)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
