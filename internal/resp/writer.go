package resp

import (
	"strconv"
	"strings"
)

// replyWriter encodes replies in the protocol version the connection
// negotiated (2 or 3) into a buffer the connection flushes once per
// pipeline batch. RESP3-only types fall back to their RESP2 shapes, as
// Redis does: maps and sets become arrays, doubles bulk strings, nulls
// the null bulk or null array.
type replyWriter struct {
	buf   []byte
	proto int
}

func (w *replyWriter) line(prefix byte, s string) {
	w.buf = append(w.buf, prefix)
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '\r', '\n')
}

func (w *replyWriter) header(prefix byte, n int) {
	w.buf = append(w.buf, prefix)
	w.buf = strconv.AppendInt(w.buf, int64(n), 10)
	w.buf = append(w.buf, '\r', '\n')
}

// simple writes a status reply (+OK); s must not contain CR or LF.
func (w *replyWriter) simple(s string) { w.line('+', s) }

// ok writes +OK.
func (w *replyWriter) ok() { w.simple("OK") }

// err writes an error reply. msg starts with its code (ERR, NOAUTH, ...);
// CR and LF become spaces so a message can never break the framing.
func (w *replyWriter) err(msg string) {
	if strings.ContainsAny(msg, "\r\n") {
		msg = strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
	}
	w.line('-', msg)
}

// int writes an integer reply.
func (w *replyWriter) int(n int64) {
	w.buf = append(w.buf, ':')
	w.buf = strconv.AppendInt(w.buf, n, 10)
	w.buf = append(w.buf, '\r', '\n')
}

// bulk writes a bulk string.
func (w *replyWriter) bulk(s string) { appendBulk(w, s) }

// bulkBytes writes a bulk string of bytes the writer does not keep.
func (w *replyWriter) bulkBytes(b []byte) { appendBulk(w, b) }

// appendBulk is bulk and bulkBytes: the header, the bytes, CRLF.
func appendBulk[T string | []byte](w *replyWriter, v T) {
	w.header('$', len(v))
	w.buf = append(w.buf, v...)
	w.buf = append(w.buf, '\r', '\n')
}

// bulkFrom writes a bulk string whose bytes fill appends to the buffer it
// is given (a value read straight into the reply, without a string of its
// own), or the null reply when fill finds no value. An error from fill is
// returned with nothing written.
func (w *replyWriter) bulkFrom(fill func(dst []byte) ([]byte, bool, error)) error {
	// Room for the header ("$", the longest length, CRLF) before the
	// value; the header is written once the length is known and the value
	// moved up behind it.
	const room = 1 + 20 + 2
	at := len(w.buf)
	buf, ok, err := fill(append(w.buf, make([]byte, room)...))
	if err != nil || !ok {
		w.buf = buf[:at]
		if err == nil {
			w.null()
		}
		return err
	}
	n := len(buf) - at - room
	hdr := append(buf[at:at], '$')
	hdr = strconv.AppendInt(hdr, int64(n), 10)
	hdr = append(hdr, '\r', '\n')
	copy(buf[at+len(hdr):], buf[at+room:])
	w.buf = append(buf[:at+len(hdr)+n], '\r', '\n')
	return nil
}

// null writes the null reply: RESP3 "_", RESP2 the null bulk string.
func (w *replyWriter) null() {
	if w.proto >= 3 {
		w.buf = append(w.buf, "_\r\n"...)
	} else {
		w.buf = append(w.buf, "$-1\r\n"...)
	}
}

// nullArray writes a null where an array was expected (EXEC aborted):
// RESP3 "_", RESP2 "*-1".
func (w *replyWriter) nullArray() {
	if w.proto >= 3 {
		w.buf = append(w.buf, "_\r\n"...)
	} else {
		w.buf = append(w.buf, "*-1\r\n"...)
	}
}

// array starts an array of n elements.
func (w *replyWriter) array(n int) { w.header('*', n) }

// mapHeader starts a map of n pairs: RESP2 sends 2n array elements.
func (w *replyWriter) mapHeader(n int) {
	if w.proto >= 3 {
		w.header('%', n)
	} else {
		w.header('*', 2*n)
	}
}

// set starts a set of n elements: an array in RESP2.
func (w *replyWriter) set(n int) {
	if w.proto >= 3 {
		w.header('~', n)
	} else {
		w.header('*', n)
	}
}

// bulks writes an array of bulk strings.
func (w *replyWriter) bulks(items []string) {
	w.array(len(items))
	for _, s := range items {
		w.bulk(s)
	}
}

// verbatim writes a verbatim text string (INFO, CLIENT INFO/LIST): RESP3
// "=" with the txt format, RESP2 a bulk string.
func (w *replyWriter) verbatim(s string) {
	if w.proto < 3 {
		w.bulk(s)
		return
	}
	w.header('=', len(s)+4)
	w.buf = append(w.buf, "txt:"...)
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '\r', '\n')
}

// raw appends encoded replies (a queued command's, inside EXEC).
func (w *replyWriter) raw(b []byte) { w.buf = append(w.buf, b...) }
