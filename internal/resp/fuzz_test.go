package resp

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
)

// fuzzLimits keeps one input's cost small: a 64 KiB bulk (SETRANGE and
// APPEND stop there too), 1,024 arguments, a 1 MiB request. Inputs still
// reach every limit, since each is far below what the fuzzer writes.
func fuzzLimits(c *Config) {
	c.MaxBulk = 64 << 10
	c.MaxArgs = 1 << 10
	c.MaxQueryBuffer = 1 << 20
}

// fuzzSeeds cover each way a request can be framed or broken: RESP
// arrays, inline commands (quotes, escapes, blank lines), pipelines of
// both, transactions, RESP3, lengths past every limit or negative,
// nesting where only bulks may stand, and plain junk.
var fuzzSeeds = []string{
	"*1\r\n$4\r\nPING\r\n",
	"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
	"PING\r\nset a 1\r\nincr a\r\nget a\r\nmget a b c\r\n",
	"set \"a b\" 'c d'\r\nget \"a b\"\r\nset \"\\x41\\n\" x\n\n\r\n",
	"set \"unterminated\r\n",
	"*2\r\n$4\r\nECHO\r\n$5\r\nhel",
	"*99999999999999999999\r\n",
	"*1048577\r\n$1\r\na\r\n",
	"*1\r\n$4294967296\r\n",
	"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$70000\r\nv\r\n",
	"*-1\r\n*0\r\n*1\r\n$-1\r\n",
	"*2\r\n*1\r\n$1\r\na\r\n$1\r\nb\r\n",
	"*2\r\n:1\r\n+OK\r\n",
	"$3\r\nGET\r\n",
	"*1\r\n$4\r\nPING\n",
	"*1\r\r\n",
	"MULTI\r\nSET a 1\r\nINCR a\r\nGETSET a 2\r\nEXEC\r\nWATCH a\r\nMULTI\r\nFOO\r\nEXEC\r\n",
	"HELLO 3\r\nCONFIG GET *\r\nCOMMAND INFO get set\r\nCLIENT INFO\r\nINFO\r\nSCAN 0 COUNT 1\r\nTTL a\r\n",
	"HELLO 3 AUTH default x SETNAME n\r\nRESET\r\nSELECT 1\r\nQUIT\r\nPING\r\n",
	"SET k v EX 0\r\nSET k v PX -1\r\nSET k v EXAT 99999999999999999\r\nEXPIRE k 9223372036854775807\r\nINCRBYFLOAT k 1e400\r\n",
	"SETRANGE k 65536 x\r\nSETRANGE k 9999999999 x\r\nAPPEND k " + strings.Repeat("x", 300) + "\r\nGETRANGE k -9223372036854775808 9223372036854775807\r\n",
	"SCAN 18446744073709551615\r\nSCAN 0 MATCH [\r\nKEYS *\\\r\nCLIENT KILL SKIPME no\r\nPING\r\n",
	"\x00\xff\r\n*\r\n$\r\n\r\n\n\n" + strings.Repeat("*1\r\n", 40),
	strings.Repeat("PING\r\n", 300),
}

// FuzzRequest sends arbitrary bytes to a live server on one connection,
// then closes the connection's write side. Whatever the bytes, the server
// must answer with well-formed RESP replies only and close the connection
// (it has seen the end of the input) within seconds, and its count of
// open connections must return to zero: no panic, no hang, no leaked
// connection. Both the request reader (reader.go, behind the limits
// guard) and the dispatcher, with every command in the table, are in
// reach.
func FuzzRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	ts := startTestServer(f, fuzzLimits)
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// The server may stop reading (a protocol error, QUIT) before the
		// input ends, so write beside the read.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, _ = nc.Write(in)
			_ = nc.(*net.TCPConn).CloseWrite()
		}()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(nc)
		<-wrote
		if err != nil && !isReset(err) {
			t.Fatalf("the server neither answered nor closed within 10s (%v); it wrote %d bytes: %q", err, len(out), clip(string(out), 300))
		}
		if _, err := checkReplyStream(out); err != nil {
			t.Fatalf("malformed reply stream: %v\nreplies: %q", err, clip(string(out), 2000))
		}
		deadline := time.Now().Add(5 * time.Second)
		for ts.srv.connected() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections still open 5s after the client's went away", ts.srv.connected())
			}
			time.Sleep(time.Millisecond)
		}
		// Inputs write keys; start each from an empty keyspace, so memory
		// stays bounded over millions of inputs.
		if err := ts.store.Blind(t.Context(), func(tx *kv.Tx) error {
			_, err := tx.FlushAll(t.Context())
			return err
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// isReset reports a connection the server closed with unread input
// pending, which the kernel turns into a reset: a clean close too.
func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset by peer")
}
