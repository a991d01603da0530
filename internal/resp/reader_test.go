package resp

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/tidwall/redcon"
)

// chunkReader hands out its input n bytes per Read, then io.EOF.
type chunkReader struct {
	in []byte
	n  int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in[:min(c.n, len(c.in))])
	c.in = c.in[n:]
	return n, nil
}

// readAll reads batches until an error; each batch is rendered as its
// commands' arguments, copied (they are valid only until the next read).
func readAll(read func() ([][][]byte, error)) (batches []string, err error) {
	for range 100_000 {
		cmds, err := read()
		if err != nil {
			return batches, err
		}
		var b strings.Builder
		for _, args := range cmds {
			fmt.Fprintf(&b, "%q;", args)
		}
		batches = append(batches, b.String())
	}
	return batches, fmt.Errorf("no end after 100000 batches")
}

// compareWithRedcon parses in with the request reader and with redcon's
// Reader, fed the same chunks, and fails unless both return the same
// batches of commands and end with the same error. Chunks of one byte
// make the two see every prefix of the input alike; a single chunk (for
// inputs that fit the first buffer) makes them see it all at once.
func compareWithRedcon(t *testing.T, in []byte) {
	t.Helper()
	sizes := []int{1}
	if len(in) <= readerBuf {
		sizes = append(sizes, readerBuf)
	}
	for _, n := range sizes {
		ours := newRequestReader(&chunkReader{in: in, n: n})
		gotBatches, gotErr := readAll(func() ([][][]byte, error) {
			cmds, err := ours.ReadCommands()
			out := make([][][]byte, len(cmds))
			for i, c := range cmds {
				out[i] = c.Args
			}
			return out, err
		})
		theirs := redcon.NewReader(&chunkReader{in: in, n: n})
		wantBatches, wantErr := readAll(func() ([][][]byte, error) {
			cmds, err := theirs.ReadCommands()
			out := make([][][]byte, len(cmds))
			for i, c := range cmds {
				out[i] = c.Args
			}
			return out, err
		})
		if fmt.Sprint(gotBatches) != fmt.Sprint(wantBatches) || gotErr.Error() != wantErr.Error() {
			t.Fatalf("input %q in chunks of %d:\nreader %q, %v\nredcon %q, %v", clip(string(in), 200), n, gotBatches, gotErr, wantBatches, wantErr)
		}
	}
}

// readerSeeds: well-formed arrays and inline lines, pipelines, and each
// way the framing can break (the guard stops most of them before the
// reader; these reach it directly).
var readerSeeds = []string{
	"",
	"*1\r\n$4\r\nPING\r\n",
	"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
	"PING\r\nset a 1\r\n\r\n\nget   a  \nmget a b c\r\n",
	"set \"a b\" 'c d'\r\nget \"a\\n\\r\\t\\\"b\"\r\n",
	"set \"unterminated\r\n",
	"set a\"b\" c\r\n",
	"set \"a\"b c\r\n",
	"*2\r\n$4\r\nECHO\r\n$5\r\nhel",
	"*0\r\n", "*-1\r\n", "*x\r\n", "*1\n", "*+1\r\n$1\r\na\r\n", "*01\r\n$01\r\na\r\n",
	"*1\r\n$-1\r\n", "*1\r\n$x\r\n", "*1\r\n$1\n", "*1\r\n$1\r\nab\r\n", "*1\r\n:1\r\n",
	"*2\r\n*1\r\n$1\r\na\r\n$1\r\nb\r\n",
	"PING\r\n*0\r\n",
	"*99999999999999999999\r\n",
	// Where redcon's ReadNextCommand, which the reader parses with,
	// differs from its Reader: an empty array; negative bulk lengths
	// (-1 at the very end, -2 and below, past the start of the input);
	// bulk bytes that end like a "$-1" header; lines starting with '$'.
	"*-0\r\n", "PING\r\n*0\r\nPING\r\n",
	"PING\r\n*1\r\n$-1\r\n", "*2\r\n$3\r\nGET\r\n$-01\r\n",
	"*2\r\n$-2\r\n$1\r\na\r\n", "*1\r\n$-3\r\n", "*1\r\n$-100\r\n", "*3\r\n$1\r\na\r\n$-7\r\nb\r\n",
	"*2\r\n$9\r\nab\r\n$-1\r\n\r\n", "*2\r\n$10\r\nab\r\n$-1\r\n",
	"*3\r\n$3\r\nSET\r\n$5000\r\n" + strings.Repeat("x", 5000) + "\r\n$-1\r\n",
	"*2\r\n$5000\r\n" + strings.Repeat("x", 4993) + "\r\n$-1\r\n\r\n",
	"$3 GET\r\n$1\r\nx y\r\n", "$\r\n$ 'a b'\r\n$\"a\"b\r\n", "$5 abc",
	strings.Repeat("*1\r\n$4\r\nPING\r\n", 300),
	"*2\r\n$3\r\nGET\r\n$5000\r\n" + strings.Repeat("x", 5000) + "\r\n*1\r\n$4\r\nPING\r\n",
}

// TestReaderMatchesRedcon: on every seed, the request reader returns what
// redcon's Reader (the server's reader before) returns.
func TestReaderMatchesRedcon(t *testing.T) {
	for _, s := range append(readerSeeds, fuzzSeeds...) {
		compareWithRedcon(t, []byte(s))
	}
}

// FuzzReader: go test -fuzz FuzzReader ./internal/resp
func FuzzReader(f *testing.F) {
	for _, s := range append(readerSeeds, fuzzSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if hugeCount.Match(in) {
			// redcon's Reader walks every announced argument on each
			// read, so with one-byte reads such an input takes hours.
			t.Skip()
		}
		compareWithRedcon(t, in)
	})
}

// hugeCount matches an array header announcing 10,000 or more elements.
var hugeCount = regexp.MustCompile(`\*[+-]?0*[1-9][0-9]{4}`)

// loopSource serves the same batch of requests on every Read.
type loopSource struct{ batch []byte }

func (s *loopSource) Read(p []byte) (int, error) { return copy(p, s.batch), nil }

// TestReaderAllocatesNothing: once its buffers have grown, reading a
// pipeline of array commands allocates nothing, and the arguments are the
// request's bytes.
func TestReaderAllocatesNothing(t *testing.T) {
	var batch bytes.Buffer
	for i := range 16 {
		fmt.Fprintf(&batch, "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$5\r\nvalue\r\n", i)
	}
	rd := newRequestReader(&loopSource{batch: batch.Bytes()})
	check := func() {
		cmds, err := rd.ReadCommands()
		if err != nil || len(cmds) != 16 {
			t.Fatalf("%d commands, %v", len(cmds), err)
		}
		if a := cmds[15].Args; len(a) != 3 || string(a[1]) != "key:000000000015" || string(a[2]) != "value" {
			t.Fatalf("args %q", a)
		}
	}
	check()
	if n := testing.AllocsPerRun(100, check); n != 0 {
		t.Fatalf("%.1f allocations per batch of 16 commands", n)
	}
}

// BenchmarkReader measures the reader alone: batches of the commands
// redis-benchmark sends (16 SETs or GETs of a 100-byte value, or 2 MSETs
// of 10 keys: what fits the reader's first buffer), from a source that
// serves the same batch on every read; ns/op is per command.
//
//	go test -run '^$' -bench Reader -benchmem ./internal/resp
func BenchmarkReader(b *testing.B) {
	value := strings.Repeat("v", 100)
	bulk := func(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }
	for _, tc := range []struct {
		name  string
		depth int
		req   func(i int) string
	}{
		{"SET", 16, func(i int) string { return "*3\r\n$3\r\nSET\r\n" + bulk(fmt.Sprintf("key:%012d", i)) + bulk(value) }},
		{"GET", 16, func(i int) string { return "*2\r\n$3\r\nGET\r\n" + bulk(fmt.Sprintf("key:%012d", i)) }},
		{"MSET", 2, func(i int) string {
			r := "*21\r\n$4\r\nMSET\r\n"
			for j := range 10 {
				r += bulk(fmt.Sprintf("key:%012d", i*10+j)) + bulk(value)
			}
			return r
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var batch strings.Builder
			for i := range tc.depth {
				batch.WriteString(tc.req(i))
			}
			rd := newRequestReader(&loopSource{batch: []byte(batch.String())})
			b.ReportAllocs()
			for i := 0; i < b.N; i += tc.depth {
				cmds, err := rd.ReadCommands()
				if err != nil || len(cmds) != tc.depth {
					b.Fatalf("%d commands, %v", len(cmds), err)
				}
			}
		})
	}
}
