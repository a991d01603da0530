package resp

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// maxReplyDepth bounds the nesting a reply stream may have: the deepest
// reply the server writes (COMMAND's subcommands) is far shallower.
const maxReplyDepth = 16

// checkReplyStream checks that b is a sequence of complete, well-formed
// RESP2/RESP3 replies, as a client's parser would read them: every line
// ends in CRLF, lengths and counts are decimal, every bulk has exactly its
// length of bytes, aggregates hold their count of elements, and nothing is
// left over. It returns the number of top-level replies.
func checkReplyStream(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		rest, err := checkOneReply(b, 0)
		if err != nil {
			return n, fmt.Errorf("reply %d (at byte %d of %d): %w", n+1, len(b)-len(rest), len(b), err)
		}
		b = rest
		n++
	}
	return n, nil
}

// replyLine splits the line after a type byte from what follows it.
func replyLine(b []byte) (line, rest []byte, err error) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return nil, nil, fmt.Errorf("line %q not ended by CRLF", b)
	}
	line = b[:i]
	if bytes.ContainsAny(line, "\r\n") {
		return nil, nil, fmt.Errorf("line %q holds a bare CR or LF", line)
	}
	return line, b[i+2:], nil
}

func replyCount(line []byte, min int64) (int64, error) {
	n, err := strconv.ParseInt(string(line), 10, 64)
	if err != nil || n < min {
		return 0, fmt.Errorf("length %q", line)
	}
	return n, nil
}

// checkOneReply checks one reply at the start of b and returns what follows.
func checkOneReply(b []byte, depth int) ([]byte, error) {
	if depth > maxReplyDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxReplyDepth)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("reply cut short")
	}
	kind := b[0]
	line, rest, err := replyLine(b[1:])
	if err != nil {
		return nil, err
	}
	switch kind {
	case '+', '-':
		if kind == '-' && len(line) == 0 {
			return nil, fmt.Errorf("empty error reply")
		}
		return rest, nil
	case ':', '(':
		if !isRESPInteger(line) {
			return nil, fmt.Errorf("integer %q", line)
		}
		return rest, nil
	case ',':
		if _, err := strconv.ParseFloat(string(line), 64); err != nil && !bytes.EqualFold(line, []byte("inf")) &&
			!bytes.EqualFold(line, []byte("-inf")) && !bytes.EqualFold(line, []byte("nan")) {
			return nil, fmt.Errorf("double %q", line)
		}
		return rest, nil
	case '_':
		if len(line) != 0 {
			return nil, fmt.Errorf("null with %q", line)
		}
		return rest, nil
	case '#':
		if string(line) != "t" && string(line) != "f" {
			return nil, fmt.Errorf("boolean %q", line)
		}
		return rest, nil
	case '$', '=', '!':
		n, err := replyCount(line, -1)
		if err != nil {
			return nil, err
		}
		if n == -1 {
			if kind != '$' {
				return nil, fmt.Errorf("null %c", kind)
			}
			return rest, nil
		}
		if int64(len(rest)) < n+2 || rest[n] != '\r' || rest[n+1] != '\n' {
			return nil, fmt.Errorf("a %d-byte %c string not followed by CRLF", n, kind)
		}
		if kind == '=' && (n < 4 || rest[3] != ':') {
			return nil, fmt.Errorf("verbatim string without its format")
		}
		return rest[n+2:], nil
	case '*', '~', '>', '%', '|':
		n, err := replyCount(line, -1)
		if err != nil {
			return nil, err
		}
		if n == -1 && kind != '*' {
			return nil, fmt.Errorf("null %c", kind)
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		for i := int64(0); i < n; i++ {
			if rest, err = checkOneReply(rest, depth+1); err != nil {
				return nil, fmt.Errorf("element %d: %w", i+1, err)
			}
		}
		return rest, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}

// isRESPInteger reports whether line is an integer or big number: an
// optional sign, then digits.
func isRESPInteger(line []byte) bool {
	if len(line) > 0 && (line[0] == '-' || line[0] == '+') {
		line = line[1:]
	}
	if len(line) == 0 {
		return false
	}
	for _, c := range line {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// TestCheckReplyStream proves the fuzz target's reply check can fail:
// each broken stream is refused, each sound one counted.
func TestCheckReplyStream(t *testing.T) {
	good := map[string]int{
		"":                                0,
		"+OK\r\n:-1\r\n$0\r\n\r\n$-1\r\n": 4,
		"*2\r\n$1\r\na\r\n*-1\r\n%1\r\n+k\r\n_\r\n":     2,
		"~1\r\n#t\r\n,1.5\r\n=7\r\ntxt:abc\r\n(123\r\n": 4,
	}
	for s, want := range good {
		if n, err := checkReplyStream([]byte(s)); err != nil || n != want {
			t.Errorf("%q: %d replies, %v; want %d", s, n, err, want)
		}
	}
	for _, s := range []string{
		"+OK", "+OK\n", "-\r\n", ":1a\r\n", "$3\r\nab\r\n", "$3\r\nabcd\r\n", "*2\r\n+a\r\n",
		"%1\r\n+k\r\n", "?\r\n", "_x\r\n", "#x\r\n", "$-2\r\n", "+a\rb\r\n",
		strings.Repeat("*1\r\n", maxReplyDepth+2) + ":1\r\n",
	} {
		if _, err := checkReplyStream([]byte(s)); err == nil {
			t.Errorf("%q passed", s)
		}
	}
}
