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
	br := bufio.NewReader(body)
	if err := expectObject(br); err != nil {
		return err
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return jsonError(err)
		}
		return invalidf("invalid JSON body: unexpected data after the JSON object")
	}
	return nil
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
