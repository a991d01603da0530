package resp

import (
	"errors"
	"io"
	"strconv"
	"unsafe"
)

// requestReader splits a connection's byte stream into commands: RESP
// arrays of bulk strings, and inline (telnet) command lines. It parses and
// answers errors exactly as github.com/tidwall/redcon's Reader does,
// which the server used before, but it allocates nothing per command: a command's arguments are
// views of the reader's buffer, and the slices of commands and arguments
// are reused from one batch to the next. So the commands ReadCommands
// returns, and their arguments, are valid only until the next call; a
// caller keeping an argument longer copies it (MULTI's queue does).
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

	cmds  []request
	args  [][]byte
	marks []int
}

// request is one command as read: its name and arguments.
type request struct {
	Args [][]byte
}

// Buffer sizes: the reader starts with readerBuf bytes, and drops a
// buffer grown past readerKeep once it is empty.
const (
	readerBuf  = 4096
	readerKeep = 64 << 10
)

// The framing errors, in redcon's words (which are Redis's).
type readerError string

func (e readerError) Error() string { return "Protocol error: " + string(e) }

const (
	errUnbalancedQuotes       readerError = "unbalanced quotes in request"
	errInvalidBulkLength      readerError = "invalid bulk length"
	errInvalidMultiBulkLength readerError = "invalid multibulk length"
)

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
// anywhere fails the whole batch, as redcon's reader does.
func (r *requestReader) parse() ([]request, error) {
	clear(r.cmds)
	r.cmds = r.cmds[:0]
	if cap(r.args) > 4096 {
		r.args = nil
	}
	r.args = r.args[:0]
	b := r.buf[r.start:r.end]
	for len(b) > 0 {
		var n int
		var err error
		if b[0] == '*' {
			n, err = r.parseArray(b)
		} else {
			n, err = r.parseInline(b)
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break // incomplete
		}
		b = b[n:]
	}
	r.start = r.end - len(b)
	return r.cmds, nil
}

// add appends a command of the arguments from r.args[from:].
func (r *requestReader) add(from int) {
	args := r.args[from:len(r.args):len(r.args)]
	r.cmds = append(r.cmds, request{Args: args})
}

// parseArray parses a RESP array of bulk strings at the start of b; it
// returns the bytes it took, 0 when the command is not complete yet.
func (r *requestReader) parseArray(b []byte) (int, error) {
	from := len(r.args)
	r.marks = r.marks[:0]
	for i := 1; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if b[i-1] != '\r' {
			return 0, errInvalidMultiBulkLength
		}
		count, ok := parseLength(b[1 : i-1])
		if !ok || count <= 0 {
			return 0, errInvalidMultiBulkLength
		}
		marks := r.marks[:0]
		for range count {
			i++
			if i >= len(b) {
				break
			}
			if b[i] != '$' {
				return 0, readerError("expected '$', got '" + string(b[i]) + "'")
			}
			si := i
			for ; i < len(b); i++ {
				if b[i] != '\n' {
					continue
				}
				if b[i-1] != '\r' {
					return 0, errInvalidBulkLength
				}
				size, ok := parseLength(b[si+1 : i-1])
				if !ok || size < 0 {
					return 0, errInvalidBulkLength
				}
				if i+size+2 >= len(b) {
					r.marks = marks
					return 0, nil // not all here yet
				}
				if b[i+size+2] != '\n' || b[i+size+1] != '\r' {
					return 0, errInvalidBulkLength
				}
				i++
				marks = append(marks, i, i+size)
				i += size + 1
				break
			}
		}
		r.marks = marks
		if len(marks) != count*2 {
			return 0, nil
		}
		for h := 0; h < len(marks); h += 2 {
			r.args = append(r.args, b[marks[h]:marks[h+1]:marks[h+1]])
		}
		r.add(from)
		return i + 1, nil
	}
	return 0, nil
}

// parseInline parses an inline command line at the start of b (words
// split at spaces; a word may be quoted with " or ', with \n, \r and \t
// escapes inside quotes); it returns the bytes it took, 0 when the line
// is not complete yet. An empty line is taken without a command.
func (r *requestReader) parseInline(b []byte) (int, error) {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		line := b[:i]
		if i > 0 && b[i-1] == '\r' {
			line = b[:i-1]
		}
		from := len(r.args)
		var quote, escape bool
		var quotech byte
	outer:
		for {
			word := make([]byte, 0, len(line))
			for j := 0; j < len(line); j++ {
				c := line[j]
				if !quote {
					if c == ' ' {
						if len(word) > 0 {
							r.args = append(r.args, word)
						}
						line = line[j+1:]
						continue outer
					}
					if c == '"' || c == '\'' {
						if j != 0 {
							return 0, errUnbalancedQuotes
						}
						quotech = c
						quote = true
						line = line[j+1:]
						continue outer
					}
				} else {
					if escape {
						escape = false
						switch c {
						case 'n':
							c = '\n'
						case 'r':
							c = '\r'
						case 't':
							c = '\t'
						}
					} else if c == quotech {
						quote = false
						quotech = 0
						r.args = append(r.args, word)
						line = line[j+1:]
						if len(line) > 0 && line[0] != ' ' {
							return 0, errUnbalancedQuotes
						}
						continue outer
					} else if c == '\\' {
						escape = true
						continue
					}
				}
				word = append(word, c)
			}
			if quote {
				return 0, errUnbalancedQuotes
			}
			if len(line) > 0 {
				r.args = append(r.args, line)
			}
			break
		}
		if len(r.args) > from {
			r.add(from)
		}
		return i + 1, nil
	}
	return 0, nil
}

// parseLength reads a length as redcon does (strconv.Atoi: an optional
// sign, then decimal digits).
func parseLength(b []byte) (int, bool) {
	n, err := strconv.Atoi(unsafe.String(unsafe.SliceData(b), len(b)))
	return n, err == nil
}
