package resp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Request limits, as Redis enforces them with proto-max-bulk-len and
// client-query-buffer-limit, checked on the byte stream before the
// request reader buffers it: a client announcing a 10 GiB bulk is refused at its
// header, not after the server allocated for it.
const (
	// DefaultMaxArgs is the default longest command, in arguments.
	DefaultMaxArgs = 1 << 20
	// DefaultMaxQueryBuffer is the default largest single request, in bytes.
	DefaultMaxQueryBuffer = 256 << 20
	// maxInlineLength is Redis's PROTO_INLINE_MAX_SIZE.
	maxInlineLength = 64 << 10
	// maxHeaderLine bounds a "*n" or "$n" line.
	maxHeaderLine = 32
	// recycleAfter is the request size past which the connection's reader
	// is dropped once idle: the request reader keeps the largest buffer
	// it grew, and an idle client should not hold 64 MiB for a value it
	// sent an hour ago.
	recycleAfter = 1 << 20
)

// errRecycle asks the request reader to drop a large buffer. The guard
// returns it only at a request boundary, when the reader's buffer is empty.
var errRecycle = errors.New("recycle the request reader")

// protocolError is a request the server cannot parse or will not take. The
// connection answers it (reply) and closes, as Redis does.
type protocolError struct{ reply string }

func (e *protocolError) Error() string { return e.reply }

func protoErr(format string, args ...any) *protocolError {
	return &protocolError{reply: "ERR Protocol error: " + fmt.Sprintf(format, args...)}
}

// Parser states of requestGuard.
const (
	gStart      = iota // at the first byte of a request
	gInline            // inside an inline (telnet) request line
	gArrayLen          // inside "*<n>\r\n"
	gBulkPrefix        // expecting '$'
	gBulkLen           // inside "$<n>\r\n"
	gBulkBody          // inside a bulk's bytes and its CRLF
)

// requestGuard is the connection's reader: it reads the socket with the
// idle deadline and follows the RESP framing to enforce the limits. It
// hands on every byte before a violation and reports the violation on the
// next Read, so the requests before it are answered first.
type requestGuard struct {
	// conn is the connection the goroutine transport reads, with the idle
	// deadline; src, when set, is read instead (the event loop's
	// non-blocking socket, whose idle timeout the loop enforces).
	conn     net.Conn
	src      io.Reader
	idle     time.Duration
	stopping *atomic.Bool
	maxBulk  int64
	maxArgs  int64
	maxQuery int64

	pending error
	// big records a request above recycleAfter since the last recycle.
	big bool

	state    int
	num      int64 // the number being read in a header line
	digits   int   // bytes of the header line so far
	neg      bool
	args     int64 // bulks left in the current request
	body     int64 // bytes left in the current bulk, CRLF included
	reqBytes int64 // bytes of the current request so far
}

// Read implements io.Reader for the request reader.
func (g *requestGuard) Read(p []byte) (int, error) {
	if g.pending != nil {
		return 0, g.pending
	}
	// The reader asks for bytes only once it holds no complete command, and
	// the framing is at a boundary: nothing is buffered above this Read.
	if g.big && g.state == gStart {
		g.big = false
		return 0, errRecycle
	}
	var n int
	var err error
	if g.src != nil {
		n, err = g.src.Read(p)
	} else {
		var deadline time.Time
		if g.idle > 0 {
			deadline = time.Now().Add(g.idle)
		}
		if err := g.conn.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		// Checked after the deadline is set, so a shutdown that set its own
		// deadline just before is not overwritten unseen.
		if g.stopping.Load() {
			return 0, errStopping
		}
		n, err = g.conn.Read(p)
	}
	if n > 0 {
		if i, verr := g.scan(p[:n]); verr != nil {
			g.pending = verr
			return i, nil
		}
	}
	return n, err
}

// scan advances the framing over b; on a violation it returns the offset
// of the offending byte and the error.
func (g *requestGuard) scan(b []byte) (int, error) {
	for i := 0; i < len(b); i++ {
		if g.state == gBulkBody {
			step := min(g.body, int64(len(b)-i))
			g.body -= step
			g.reqBytes += step
			i += int(step) - 1
			if g.body == 0 {
				g.bulkDone()
				if g.state == gStart && g.reqBytes > recycleAfter {
					g.big = true
				}
			}
			if g.reqBytes > g.maxQuery {
				return i, g.queryTooBig()
			}
			continue
		}
		c := b[i]
		if g.state == gStart && g.reqBytes > recycleAfter {
			g.big = true
		}
		g.reqBytes++
		if g.reqBytes > g.maxQuery {
			return i, g.queryTooBig()
		}
		switch g.state {
		case gStart:
			g.reqBytes = 1
			if c == '*' {
				g.state = gArrayLen
				g.startNumber()
			} else {
				g.state = gInline
				g.digits = 1
				if c == '\n' {
					g.state = gStart
				}
			}
		case gInline:
			if c == '\n' {
				g.state = gStart
				continue
			}
			if g.digits++; g.digits > maxInlineLength {
				return i, protoErr("too big inline request")
			}
		case gArrayLen:
			done, ok := g.number(c)
			if !ok || (done && g.num > g.maxArgs) {
				return i, protoErr("invalid multibulk length")
			}
			if done {
				g.args = g.num
				g.state = gBulkPrefix
				if g.neg || g.args == 0 {
					g.state = gStart
				}
			}
		case gBulkPrefix:
			if c != '$' {
				return i, protoErr("expected '$', got '%c'", c)
			}
			g.state = gBulkLen
			g.startNumber()
		case gBulkLen:
			done, ok := g.number(c)
			if !ok || (done && (g.neg || g.num > g.maxBulk)) {
				return i, protoErr("invalid bulk length")
			}
			if done {
				g.body = g.num + 2
				g.state = gBulkBody
			}
		}
	}
	return len(b), nil
}

func (g *requestGuard) startNumber() { g.num, g.digits, g.neg = 0, 0, false }

// number takes one byte of a header line; done at its '\n', ok false when
// the line is malformed or too long.
func (g *requestGuard) number(c byte) (done, ok bool) {
	g.digits++
	switch {
	case g.digits > maxHeaderLine:
		return false, false
	case c == '\n':
		return true, true
	case c == '\r':
		return false, true
	case c == '-' && g.digits == 1:
		g.neg = true
		return false, true
	case c >= '0' && c <= '9':
		if g.num > (1<<62)/10 {
			return false, false
		}
		g.num = g.num*10 + int64(c-'0')
		return false, true
	}
	return false, false
}

func (g *requestGuard) bulkDone() {
	if g.args--; g.args > 0 {
		g.state = gBulkPrefix
	} else {
		g.state = gStart
	}
}

func (g *requestGuard) queryTooBig() error {
	return &protocolError{reply: fmt.Sprintf("ERR Protocol error: the request exceeds the query buffer limit of %d bytes", g.maxQuery)}
}

// isTimeout reports a read deadline that passed (the idle timeout).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var _ io.Reader = (*requestGuard)(nil)
