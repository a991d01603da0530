package crashtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// respConn is one Redis-protocol connection of the harness: a writer's,
// or the verifier's. It writes whole pipelines at once and reads their
// replies one by one, so the harness knows exactly which replies arrived
// before a kill cut the connection.
type respConn struct {
	nc net.Conn
	rd *bufio.Reader
	wr *bufio.Writer
}

func dialRESP(ctx context.Context, addr string) (*respConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to the Redis-protocol port %s: %w", addr, err)
	}
	return &respConn{nc: nc, rd: bufio.NewReaderSize(nc, 64<<10), wr: bufio.NewWriterSize(nc, 64<<10)}, nil
}

func (c *respConn) close() { _ = c.nc.Close() }

// command appends one command, as a RESP array of bulk strings, to the
// connection's write buffer.
func (c *respConn) command(args ...[]byte) {
	c.wr.WriteString("*")
	c.wr.WriteString(strconv.Itoa(len(args)))
	c.wr.WriteString("\r\n")
	for _, a := range args {
		c.wr.WriteString("$")
		c.wr.WriteString(strconv.Itoa(len(a)))
		c.wr.WriteString("\r\n")
		c.wr.Write(a)
		c.wr.WriteString("\r\n")
	}
}

// send writes the buffered commands, bounded by requestTimeout.
func (c *respConn) send() error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(requestTimeout))
	return c.wr.Flush()
}

// respReply is one reply: its type byte ('+', '-', ':', '$'), the line
// after it (a simple string, error, integer or bulk length), and a bulk's
// bytes (nil for the null bulk).
type respReply struct {
	kind byte
	line string
	bulk []byte
}

func (r respReply) String() string {
	switch r.kind {
	case '$':
		if r.bulk == nil {
			return "a null bulk"
		}
		return fmt.Sprintf("a %d-byte bulk", len(r.bulk))
	case '-':
		return "error " + strconv.Quote(r.line)
	}
	return strconv.Quote(string(r.kind) + r.line)
}

// errReplyShape is a reply the harness cannot parse: the server broke the
// protocol, not the connection.
var errReplyShape = errors.New("malformed reply")

// reply reads one reply, bounded by requestTimeout. Replies the harness's
// commands never get (arrays, maps, RESP3 types) are a protocol error.
func (c *respConn) reply() (respReply, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(requestTimeout))
	line, err := c.rd.ReadString('\n')
	if err != nil {
		return respReply{}, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return respReply{}, fmt.Errorf("%w: line %q", errReplyShape, line)
	}
	r := respReply{kind: line[0], line: line[1 : len(line)-2]}
	switch r.kind {
	case '+', '-', ':':
		return r, nil
	case '$':
		n, err := strconv.Atoi(r.line)
		if err != nil || n < -1 {
			return respReply{}, fmt.Errorf("%w: bulk length %q", errReplyShape, r.line)
		}
		if n == -1 {
			return r, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.rd, b); err != nil {
			return respReply{}, err
		}
		if b[n] != '\r' || b[n+1] != '\n' {
			return respReply{}, fmt.Errorf("%w: a %d-byte bulk not ended by CRLF", errReplyShape, n)
		}
		r.bulk = b[:n]
		return r, nil
	}
	return respReply{}, fmt.Errorf("%w: type %q", errReplyShape, r.kind)
}

// queue appends o to the write buffer as the command it is over RESP:
// SET for a put, DEL for a delete, MSET for a batch (all puts).
func (c *respConn) queue(o *op) {
	switch o.kind {
	case opPut:
		w := o.writes[0]
		c.command([]byte("SET"), []byte(keyName(w.key)), valueBytes(o.id, w.key, w.size))
	case opDelete:
		c.command([]byte("DEL"), []byte(keyName(o.writes[0].key)))
	case opBatch:
		args := [][]byte{[]byte("MSET")}
		for _, w := range o.writes {
			args = append(args, []byte(keyName(w.key)), valueBytes(o.id, w.key, w.size))
		}
		c.command(args...)
	}
}

// replyError is a reply to a write other than the one the command owes: an
// error reply, or a DEL count that contradicts what the key held.
type replyError struct {
	got  respReply
	want string
}

func (e *replyError) Error() string {
	return fmt.Sprintf("answered %v, want %s", e.got, e.want)
}

// checkReply compares the reply to o with what o must answer: +OK to SET and
// MSET, and to DEL the number of keys it deleted, which the writer knows
// (present says whether the key held a value before the DEL).
func checkReply(o *op, r respReply, present bool) *replyError {
	switch o.kind {
	case opDelete:
		want := "0"
		if present {
			want = "1"
		}
		if r.kind != ':' || r.line != want {
			return &replyError{got: r, want: ":" + want}
		}
	default:
		if r.kind != '+' || r.line != "OK" {
			return &replyError{got: r, want: "+OK"}
		}
	}
	return nil
}

// getRESP reads one key with GET.
func (c *respConn) get(key string) (observed, error) {
	c.command([]byte("GET"), []byte(key))
	if err := c.send(); err != nil {
		return observed{}, err
	}
	r, err := c.reply()
	switch {
	case err != nil:
		return observed{}, fmt.Errorf("GET %s: %w", key, err)
	case r.kind != '$':
		return observed{}, fmt.Errorf("GET %s answered %v", key, r)
	case r.bulk == nil:
		return observed{}, nil
	}
	return observed{present: true, value: r.bulk}, nil
}

// dbsize reads DBSIZE.
func (c *respConn) dbsize() (uint64, error) {
	c.command([]byte("DBSIZE"))
	if err := c.send(); err != nil {
		return 0, err
	}
	r, err := c.reply()
	if err != nil {
		return 0, fmt.Errorf("DBSIZE: %w", err)
	}
	n, perr := strconv.ParseUint(r.line, 10, 64)
	if r.kind != ':' || perr != nil {
		return 0, fmt.Errorf("DBSIZE answered %v", r)
	}
	return n, nil
}
