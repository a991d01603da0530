package resp

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// BenchmarkRequest measures the server's cost per command of the requests
// redis-benchmark sends (SET and GET of 100-byte values, MSET of 10 keys,
// INCR), one at a time and pipelined 16 deep, on the default engine with
// --sync never and the default transport. The client writes prepared requests and
// reads the replies into one buffer, so the allocations reported are the
// server's: that figure is what this benchmark is for.
//
//	make build-rust-core && go test -tags rust -run '^$' -bench Request -benchmem ./internal/resp
func BenchmarkRequest(b *testing.B) {
	value := strings.Repeat("v", 100)
	const keys = 1024
	key := func(i int) string { return fmt.Sprintf("key:%012d", i%keys) }
	counter := func(i int) string { return fmt.Sprintf("counter:%04d", i%keys) }
	bulk := func(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }
	for _, tc := range []struct {
		name  string
		depth int
		req   func(i int) string
		reply string
	}{
		{"SET", 1, func(i int) string { return "*3\r\n$3\r\nSET\r\n" + bulk(key(i)) + bulk(value) }, "+OK\r\n"},
		{"GET", 1, func(i int) string { return "*2\r\n$3\r\nGET\r\n" + bulk(key(i)) }, bulk(value)},
		{"MSET", 1, func(i int) string {
			r := "*21\r\n$4\r\nMSET\r\n"
			for j := range 10 {
				r += bulk(key(i*10+j)) + bulk(value)
			}
			return r
		}, "+OK\r\n"},
		// The counters start at 10 digits, so every reply has the same
		// length.
		{"INCR", 1, func(i int) string { return "*2\r\n$4\r\nINCR\r\n" + bulk(counter(i)) }, ":1000000000\r\n"},
		{"SET-P16", 16, func(i int) string { return "*3\r\n$3\r\nSET\r\n" + bulk(key(i)) + bulk(value) }, "+OK\r\n"},
		{"GET-P16", 16, func(i int) string { return "*2\r\n$3\r\nGET\r\n" + bulk(key(i)) }, bulk(value)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			engine := openDefaultEngine(b, storage.SyncNever)
			store := kv.New(engine)
			for i := range keys {
				if err := store.Put(b.Context(), key(i), value, 0); err != nil {
					b.Fatal(err)
				}
				if err := store.Put(b.Context(), counter(i), "1000000000", 0); err != nil {
					b.Fatal(err)
				}
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := Start(ln, Config{Store: store, Sync: "never"})
			defer srv.Close(b.Context())
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			// Prepared batches of depth requests, cycled through.
			batches := make([][]byte, 64)
			for i := range batches {
				var s strings.Builder
				for j := range tc.depth {
					s.WriteString(tc.req(i*tc.depth + j))
				}
				batches[i] = []byte(s.String())
			}
			want := len(tc.reply) * tc.depth
			buf := make([]byte, want)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, err := c.Write(batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
				i++
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			got := string(buf[:len(tc.reply)])
			if tc.reply[0] == ':' {
				// A counter's value depends on the iterations: an
				// integer reply of the same length is right.
				if got[0] != ':' || !strings.HasSuffix(got, "\r\n") {
					b.Fatalf("reply %q, want an integer like %q", got, tc.reply)
				}
			} else if got != tc.reply {
				b.Fatalf("reply %q, want %q", got, tc.reply)
			}
			b.ReportMetric(float64(b.N*tc.depth)/b.Elapsed().Seconds(), "cmd/s")
		})
	}
}
