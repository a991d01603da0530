// Package dumpfile reads and writes MantisDB dumps: a portable, ordered,
// binary-safe copy of every live key, written by `mantisdb dump` and read
// by `mantisdb load`.
//
// A dump is JSON lines (UTF-8, one object a line, "\n" after each):
//
//	{"format":"mantisdb-dump","version":1,"created_at":"...","source":"...","expiries":true}
//	{"key":"user:1","value":"ada"}
//	{"key":"3q2+7w==","key_encoding":"base64","value":"","expires_at_ms":1767225600000}
//	{"end":true,"keys":2,"crc32c":123456789}
//
// The first line is the header; then one entry a line, keys strictly
// increasing in byte order; the last line is the trailer, which counts the
// entries and carries the CRC-32C (Castagnoli) of every entry line's
// bytes, newline included. A key or value that is not valid UTF-8 is
// base64 (standard, padded) with "key_encoding" / "value_encoding" set to
// "base64", as in the HTTP API. "expires_at_ms" is the absolute expiry in
// milliseconds since the Unix epoch; absent means the key never expires.
// A dump without its trailer, with a line out of order, or whose count or
// checksum differs is refused where the damage is found, naming the line.
package dumpfile

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"
	"unicode/utf8"
)

// Format is the header's "format" field.
const Format = "mantisdb-dump"

// Version is the dump format version this package writes and reads.
const Version = 1

// maxLine bounds one line: a 1 GiB value (the engine's hard limit) in
// base64 with its key and framing.
const maxLine = (1<<30)/3*4 + 1<<20

const encodingBase64 = "base64"

// ErrFormat is wrapped by every error about the content of a dump.
var ErrFormat = errors.New("not a valid mantisdb dump")

// Header is the first line of a dump.
type Header struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Source names where the dump came from (a data directory or a server URL).
	Source string `json:"source"`
	// Expiries is true when the source could tell each key's expiry; when
	// false, keys in the dump carry none even if they had one.
	Expiries bool `json:"expiries"`
}

// Entry is one key of a dump.
type Entry struct {
	Key   string
	Value string
	// ExpiresAt is the absolute expiry; the zero time means never.
	ExpiresAt time.Time
}

// entryLine is an Entry as a JSON line.
type entryLine struct {
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
	ExpiresAtMS   int64  `json:"expires_at_ms,omitempty"`
}

// trailer is the last line of a dump.
type trailer struct {
	End    bool   `json:"end"`
	Keys   uint64 `json:"keys"`
	CRC32C uint32 `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encode(s string) (string, string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), encodingBase64
}

func decode(field, s, enc string) (string, error) {
	switch enc {
	case "":
		return s, nil
	case encodingBase64:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", fmt.Errorf("%s is not valid base64: %v", field, err)
		}
		return string(b), nil
	default:
		return "", fmt.Errorf("%s_encoding %q is not base64", field, enc)
	}
}

// Writer writes a dump. Entries must come in strictly increasing key
// order; Close writes the trailer.
type Writer struct {
	w       *bufio.Writer
	buf     bytes.Buffer
	enc     *json.Encoder
	crc     hash.Hash32
	keys    uint64
	lastKey string
	closed  bool
}

// NewWriter writes h as the header line of a dump to w. Format and
// Version are filled in.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format, h.Version = Format, Version
	dw := &Writer{w: bufio.NewWriterSize(w, 64<<10), crc: crc32.New(castagnoli)}
	dw.enc = json.NewEncoder(&dw.buf)
	dw.enc.SetEscapeHTML(false)
	if err := dw.line(h); err != nil {
		return nil, err
	}
	return dw, nil
}

// line writes v as one JSON line and returns nothing of its bytes.
func (w *Writer) line(v any) error {
	w.buf.Reset()
	if err := w.enc.Encode(v); err != nil {
		return err
	}
	_, err := w.w.Write(w.buf.Bytes())
	return err
}

// Write appends one entry. Its key must sort after the previous one's.
func (w *Writer) Write(e Entry) error {
	if w.closed {
		return errors.New("dumpfile: Write after Close")
	}
	if w.keys > 0 && e.Key <= w.lastKey {
		return fmt.Errorf("dumpfile: key %q does not sort after %q", e.Key, w.lastKey)
	}
	var l entryLine
	l.Key, l.KeyEncoding = encode(e.Key)
	l.Value, l.ValueEncoding = encode(e.Value)
	if !e.ExpiresAt.IsZero() {
		l.ExpiresAtMS = max(e.ExpiresAt.UnixMilli(), 1)
	}
	w.buf.Reset()
	if err := w.enc.Encode(l); err != nil {
		return err
	}
	_, _ = w.crc.Write(w.buf.Bytes())
	if _, err := w.w.Write(w.buf.Bytes()); err != nil {
		return err
	}
	w.keys++
	w.lastKey = e.Key
	return nil
}

// Keys is the number of entries written so far.
func (w *Writer) Keys() uint64 { return w.keys }

// Close writes the trailer and flushes; it does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.line(trailer{End: true, Keys: w.keys, CRC32C: w.crc.Sum32()}); err != nil {
		return err
	}
	return w.w.Flush()
}

// Reader reads a dump, checking its order, count and checksum.
type Reader struct {
	r       *bufio.Reader
	header  Header
	line    int
	crc     hash.Hash32
	keys    uint64
	lastKey string
	done    bool
	// n counts the bytes read, for progress reports.
	n int64
}

// NewReader reads and checks the header line of the dump in r.
func NewReader(r io.Reader) (*Reader, error) {
	dr := &Reader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
	b, err := dr.next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the input is empty", ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	if err := strictUnmarshal(b, &dr.header); err != nil || dr.header.Format != Format {
		return nil, fmt.Errorf("%w: line 1 is not a mantisdb-dump header", ErrFormat)
	}
	if dr.header.Version != Version {
		return nil, fmt.Errorf("%w: format version %d is not supported (this build reads %d)",
			ErrFormat, dr.header.Version, Version)
	}
	return dr, nil
}

// Header is the dump's header line.
func (r *Reader) Header() Header { return r.header }

// BytesRead is how many bytes of the input were consumed.
func (r *Reader) BytesRead() int64 { return r.n }

// Keys is how many entries were read so far.
func (r *Reader) Keys() uint64 { return r.keys }

// next returns the next line without its newline; io.EOF at the end.
func (r *Reader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrFormat, r.line+1, maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			return nil, fmt.Errorf("%w: line %d is cut short (no newline at the end of the input)", ErrFormat, r.line+1)
		}
		if err != nil {
			return nil, err
		}
		r.line++
		r.n += int64(len(line))
		return line, nil
	}
}

// strictUnmarshal decodes one JSON object, refusing unknown fields.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// Next returns the next entry, or io.EOF after a trailer that matches what
// was read. Any other error means the dump is damaged or cut short.
func (r *Reader) Next() (Entry, error) {
	if r.done {
		return Entry{}, io.EOF
	}
	b, err := r.next()
	if err == io.EOF {
		return Entry{}, fmt.Errorf("%w: the dump ends after line %d without its trailer (it was cut short)", ErrFormat, r.line)
	}
	if err != nil {
		return Entry{}, err
	}
	if bytes.HasPrefix(b, []byte(`{"end":`)) {
		return Entry{}, r.finish(b)
	}
	var l entryLine
	if err := strictUnmarshal(b, &l); err != nil {
		return Entry{}, fmt.Errorf("%w: line %d: %v", ErrFormat, r.line, err)
	}
	e := Entry{}
	if e.Key, err = decode("key", l.Key, l.KeyEncoding); err == nil {
		e.Value, err = decode("value", l.Value, l.ValueEncoding)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("%w: line %d: %v", ErrFormat, r.line, err)
	}
	if e.Key == "" {
		return Entry{}, fmt.Errorf("%w: line %d: the key is empty", ErrFormat, r.line)
	}
	if r.keys > 0 && e.Key <= r.lastKey {
		return Entry{}, fmt.Errorf("%w: line %d: the key does not sort after the previous line's", ErrFormat, r.line)
	}
	if l.ExpiresAtMS < 0 {
		return Entry{}, fmt.Errorf("%w: line %d: expires_at_ms %d is negative", ErrFormat, r.line, l.ExpiresAtMS)
	}
	if l.ExpiresAtMS > 0 {
		e.ExpiresAt = time.UnixMilli(l.ExpiresAtMS)
	}
	_, _ = r.crc.Write(b)
	r.keys++
	r.lastKey = e.Key
	return e, nil
}

// finish checks the trailer line b and that nothing follows it.
func (r *Reader) finish(b []byte) error {
	var t trailer
	if err := strictUnmarshal(b, &t); err != nil || !t.End {
		return fmt.Errorf("%w: line %d is not a valid trailer", ErrFormat, r.line)
	}
	if t.Keys != r.keys {
		return fmt.Errorf("%w: the trailer counts %d keys, the dump holds %d", ErrFormat, t.Keys, r.keys)
	}
	if sum := r.crc.Sum32(); t.CRC32C != sum {
		return fmt.Errorf("%w: checksum %d of the entries differs from the trailer's %d (the dump was altered)", ErrFormat, sum, t.CRC32C)
	}
	if _, err := r.r.Peek(1); err != io.EOF {
		return fmt.Errorf("%w: data follows the trailer on line %d", ErrFormat, r.line)
	}
	r.done = true
	return io.EOF
}
