package resp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// TestBulkFrom: a value appended straight into the reply gets its bulk
// header in front, whatever the length of that header and wherever the
// fill grows the buffer to; no value is the null of the protocol version,
// and a failed fill leaves the reply buffer as it was.
func TestBulkFrom(t *testing.T) {
	for _, size := range []int{0, 1, 9, 10, 100, 99999, 100000} {
		for _, capacity := range []int{0, 8, 1 << 20} {
			w := replyWriter{proto: 2, buf: append(make([]byte, 0, capacity), "+OK\r\n"...)}
			v := strings.Repeat("v", size)
			if err := w.bulkFrom(func(dst []byte) ([]byte, bool, error) { return append(dst, v...), true, nil }); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("+OK\r\n$%d\r\n%s\r\n", size, v); string(w.buf) != want {
				t.Fatalf("size %d, capacity %d: %.40q..., want %.40q...", size, capacity, w.buf, want)
			}
		}
	}
	for proto, null := range map[int]string{2: "$-1\r\n", 3: "_\r\n"} {
		w := replyWriter{proto: proto, buf: []byte(":1\r\n")}
		if err := w.bulkFrom(func(dst []byte) ([]byte, bool, error) { return dst, false, nil }); err != nil {
			t.Fatal(err)
		}
		if string(w.buf) != ":1\r\n"+null {
			t.Fatalf("RESP%d null: %q", proto, w.buf)
		}
	}
	w := replyWriter{proto: 2, buf: []byte(":1\r\n")}
	boom := errors.New("boom")
	if err := w.bulkFrom(func(dst []byte) ([]byte, bool, error) { return append(dst, "junk"...), false, boom }); err != boom {
		t.Fatalf("bulkFrom = %v, want the fill's error", err)
	}
	if string(w.buf) != ":1\r\n" {
		t.Fatalf("after a failed fill the reply buffer holds %q", w.buf)
	}
}

// TestArgsOnDefaultEngine runs SET, MSET, SETEX and GET through both transports
// on the default engine (the Rust engine in a -tags rust build, whose
// reads and blind writes take views of the request buffer instead of
// copies): values of every size come back byte for byte after later
// requests have reused the connection's buffers, pipelined or not, in
// RESP2 and RESP3, and inside MULTI/EXEC.
func TestArgsOnDefaultEngine(t *testing.T) {
	for _, transport := range []string{TransportEventLoop, TransportGoroutines} {
		t.Run(transport, func(t *testing.T) {
			engine := openDefaultEngine(t, storage.SyncNever)
			ts := startTestServer(t, func(c *Config) {
				c.Store = kv.New(engine)
				c.Sync = "never"
				c.Transport = transport
			})
			r := ts.raw(t)
			bulk := func(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }
			req := func(args ...string) string {
				s := fmt.Sprintf("*%d\r\n", len(args))
				for _, a := range args {
					s += bulk(a)
				}
				return s
			}
			model := map[string]string{}
			sizes := []int{0, 1, 100, 511, 512, 513, 5000, 70_000}
			for round := range 3 {
				// Unpipelined SETs, then one pipeline of SETs and an MSET,
				// each value different from the last round's.
				for i, size := range sizes {
					k, v := fmt.Sprintf("k%d", i), strings.Repeat(string(rune('a'+round)), size)
					r.send(req("SET", k, v))
					r.expect("+OK\r\n")
					model[k] = v
				}
				var pipe, want strings.Builder
				for i, size := range sizes {
					k, v := fmt.Sprintf("p%d", i), strings.Repeat(string(rune('k'+round)), size)
					pipe.WriteString(req("SET", k, v))
					want.WriteString("+OK\r\n")
					model[k] = v
				}
				mset := []string{"MSET"}
				for i := range 10 {
					k, v := fmt.Sprintf("m%d", i), fmt.Sprintf("%d-%s", round, strings.Repeat("m", i*100))
					mset = append(mset, k, v)
					model[k] = v
				}
				pipe.WriteString(req(mset...))
				want.WriteString("+OK\r\n")
				sx := fmt.Sprintf("setex-%d", round)
				pipe.WriteString(req("SETEX", "sx", "1000", sx) + req("PSETEX", "psx", "1000000", sx+"p"))
				want.WriteString("+OK\r\n+OK\r\n")
				model["sx"], model["psx"] = sx, sx+"p"
				r.send(pipe.String())
				r.expect(want.String())
				// Reads, one by one and pipelined.
				pipe.Reset()
				want.Reset()
				for k, v := range model {
					r.send(req("GET", k))
					r.expect(bulk(v))
					pipe.WriteString(req("GET", k))
					want.WriteString(bulk(v))
				}
				pipe.WriteString(req("GET", "absent"))
				want.WriteString("$-1\r\n")
				r.send(pipe.String())
				r.expect(want.String())
			}
			// Inside MULTI the arguments are copies; the replies the same.
			r.send(req("MULTI") + req("SET", "tx", "in-multi") + req("MSET", "tx2", "b", "tx3", "c") + req("GET", "tx") + req("EXEC"))
			r.expect("+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n+OK\r\n$8\r\nin-multi\r\n")
			c := ts.client(t, 3)
			if v, err := c.Get(t.Context(), "tx3").Result(); err != nil || v != "c" {
				t.Fatalf("RESP3 GET tx3 = %q, %v", v, err)
			}
			if err := c.Get(t.Context(), "absent").Err(); err != redis.Nil {
				t.Fatalf("RESP3 GET absent: %v, want nil", err)
			}
		})
	}
}

// openDefaultEngine opens the build's default engine in a temporary
// directory with the given sync mode, closed when tb ends.
func openDefaultEngine(tb testing.TB, sync storage.SyncPolicy) storage.StorageEngine {
	tb.Helper()
	dir := tb.TempDir()
	cfg := storage.DefaultConfig()
	cfg.DataDir, cfg.Sync = dir, sync
	engine, err := storage.NewDefaultStorageEngine(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := engine.Init(dir); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = engine.Close() })
	return engine
}
