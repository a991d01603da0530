package resp

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"

	"github.com/tidwall/redcon"
)

// requestReader splits a connection's byte stream into commands: RESP
// arrays of bulk strings, and inline (telnet) command lines. The parsing
// is redcon's ReadNextCommand (github.com/tidwall/redcon), which returns
// a command's arguments as views of the bytes it parses, appended to a
// slice the caller passes in; this type keeps the buffer, batches the
// complete commands of each read and reuses its slices from one batch to
// the next, so reading an array command allocates nothing. So the
// commands ReadCommands returns, and their arguments, are valid only
// until the next call; a caller keeping an argument longer copies it
// (MULTI's queue does).
//
// It parses and answers errors exactly as redcon's Reader does, which the
// server used before (TestReaderMatchesRedcon and FuzzReader compare the
// two). Where ReadNextCommand differs from the Reader, the reader answers
// the Reader's way (see parse): an empty array and a negative bulk length
// are refused, and a line starting with '$', which ReadNextCommand takes
// for Tile38's native protocol, is split as inline text by redcon.Parse
// (allocating; the requests of Redis clients are arrays).
//
// The source is the connection's requestGuard, which enforces the request
// limits on the bytes before they get here.
type requestReader struct {
	src io.Reader
	// buf[start:end] holds the bytes read and not yet parsed.
	buf        []byte
	start, end int
	// pending is an error the source returned with bytes, reported once
	// those are parsed.
	pending error

	cmds []request
	args [][]byte
}

// request is one command as read: its name and arguments.
type request struct {
	Args [][]byte
	// cmd is the command Args[0] names (nil: none), once looked is set:
	// the loop, the pipeline and the dispatcher each need it, and look it
	// up once.
	cmd    *command
	looked bool
}

// command is the command the request names, nil when there is none.
func (r *request) command() *command {
	if !r.looked {
		r.cmd, r.looked = lookupCommand(r.Args[0]), true
	}
	return r.cmd
}

// Buffer sizes: the reader starts with readerBuf bytes, and drops a
// buffer grown past readerKeep once it is empty.
const (
	readerBuf  = 4096
	readerKeep = 64 << 10
)

// redcon's framing errors (its values, which are unexported), for the
// answers the reader gives in its place.
var (
	errInvalidBulkLength      = redconError("*1\r\n$x\r\n")
	errInvalidMultiBulkLength = redconError("*x\r\n")
)

// redconError returns the error ReadNextCommand reports on packet.
func redconError(packet string) error {
	_, _, _, _, err := redcon.ReadNextCommand([]byte(packet), nil)
	if err == nil {
		panic("resp: redcon accepted " + packet)
	}
	return err
}

func newRequestReader(src io.Reader) *requestReader {
	return &requestReader{src: src, buf: make([]byte, readerBuf)}
}

// ReadCommands returns the next batch: every complete command the buffer
// holds, reading from the source (once per attempt) until there is one.
func (r *requestReader) ReadCommands() ([]request, error) {
	for {
		cmds, err := r.parse()
		if err != nil {
			return nil, err
		}
		if len(cmds) > 0 {
			return cmds, nil
		}
		if r.pending != nil {
			err := r.pending
			r.pending = nil
			return nil, err
		}
		if r.start == r.end {
			r.start, r.end = 0, 0
			if len(r.buf) > readerKeep {
				r.buf = make([]byte, readerBuf)
			}
		} else if r.end == len(r.buf) {
			if r.start > 0 {
				r.end = copy(r.buf, r.buf[r.start:r.end])
				r.start = 0
			} else {
				grown := make([]byte, 2*len(r.buf))
				copy(grown, r.buf[:r.end])
				r.buf = grown
			}
		}
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if errors.Is(err, errRecycle) {
			// The guard saw a large request since the last recycle and
			// the framing is at a request boundary: drop a large buffer.
			if r.start == r.end && len(r.buf) > readerBuf {
				r.start, r.end = 0, 0
				r.buf = make([]byte, readerBuf)
			}
			continue
		}
		if err != nil {
			if n == 0 {
				return nil, err
			}
			r.pending = err
		}
	}
}

// parse takes the complete commands from buf[start:end]. A framing error
// anywhere fails the whole batch, as redcon's Reader does.
//
// ReadNextCommand (v1.6.4) checks the sign of a bulk's length against the
// array's count instead of the length, so a length of -2 or less (or one
// so large that the bulk's end overflows) indexes out of range inside it;
// the Reader refuses a negative length with "invalid bulk length", which
// parse reports for such a fault. It recovers only a runtime error raised
// inside ReadNextCommand: once per batch, rather than per command.
func (r *requestReader) parse() (cmds []request, err error) {
	inRedcon := false
	defer func() {
		if inRedcon {
			p := recover()
			if _, ok := p.(runtime.Error); !ok {
				panic(p)
			}
			cmds, err = nil, errInvalidBulkLength
		}
	}()
	clear(r.cmds)
	r.cmds = r.cmds[:0]
	if cap(r.args) > 4096 {
		r.args = nil
	}
	r.args = r.args[:0]
	b := r.buf[r.start:r.end]
	for len(b) > 0 {
		if b[0] == '$' {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				break // incomplete
			}
			cmd, err := redcon.Parse(b[:i+1])
			if err != nil {
				return nil, err
			}
			from := len(r.args)
			r.args = append(r.args, cmd.Args...)
			r.add(from)
			b = b[i+1:]
			continue
		}
		inRedcon = true
		complete, args, kind, rest, err := redcon.ReadNextCommand(b, r.args[len(r.args):])
		inRedcon = false
		if err != nil {
			return nil, err
		}
		if !complete {
			if kind == redcon.Redis {
				if err := endsInNegativeBulk(b); err != nil {
					return nil, err
				}
			}
			break
		}
		if len(args) == 0 {
			if kind == redcon.Redis {
				// "*0": the Reader refuses an empty array.
				return nil, errInvalidMultiBulkLength
			}
			b = rest // a blank inline line: no command
			continue
		}
		from := len(r.args)
		if cap(r.args) > from && &r.args[:from+1][from] == &args[0] {
			// ReadNextCommand appended to r.args's spare room.
			r.args = r.args[:from+len(args)]
		} else {
			r.args = append(r.args, args...)
		}
		r.add(from)
		b = rest
	}
	r.start = r.end - len(b)
	return r.cmds, nil
}

// add appends a command of the arguments from r.args[from:].
func (r *requestReader) add(from int) {
	args := r.args[from:len(r.args):len(r.args)]
	r.cmds = append(r.cmds, request{Args: args})
}

// endsInNegativeBulk returns the Reader's error for an array command b
// that ReadNextCommand found incomplete, nil when the Reader waits for
// more too. The two differ on a bulk header of length -1 that ends b:
// ReadNextCommand waits for a byte after it, the Reader refuses it once
// its line ends. Only a b whose last line is "$-1" (in any spelling
// strconv.Atoi reads as -1) can be one, and only when that line is where
// an element starts rather than inside a bulk's bytes: the headers before
// it tell, and ReadNextCommand found them well formed. The walk skips
// each bulk's bytes, so it costs what ReadNextCommand's did, whatever the
// size of the bulks.
func endsInNegativeBulk(b []byte) error {
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		return nil
	}
	last := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
	line := b[last : len(b)-2]
	if len(line) < 2 || line[0] != '$' {
		return nil
	}
	if n, err := strconv.Atoi(string(line[1:])); err != nil || n != -1 {
		return nil
	}
	i := bytes.IndexByte(b, '\n') + 1 // past the array's count
	for i < last {
		e := bytes.IndexByte(b[i:], '\n')
		if e < 2 {
			return nil
		}
		n, err := strconv.Atoi(string(b[i+1 : i+e-1]))
		if err != nil || n < 0 || n > len(b)-(i+e+1) {
			return nil // a bulk whose bytes run past b
		}
		i += e + 1 + n + 2
	}
	if i != last {
		return nil
	}
	return errInvalidBulkLength
}
