package resp

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// BenchmarkPipelinedSET measures one connection sending pipelines of 32
// commands on different keys to the default engine with --sync always,
// dispatched in order and concurrently. SET: a run of blind writes is one
// engine Write either way, so the two should be close. INCR: each is its
// own transaction, so the ratio is what sharing group commits buys.
//
//	make build-rust-core && go test -tags rust -run '^$' -bench PipelinedSET ./internal/resp
func BenchmarkPipelinedSET(b *testing.B) {
	for _, mode := range []struct {
		name       string
		concurrent bool
		command    string
	}{{"SET/in-order", false, "SET"}, {"SET/concurrent", true, "SET"}, {"INCR/in-order", false, "INCR"}, {"INCR/concurrent", true, "INCR"}} {
		b.Run(mode.name, func(b *testing.B) {
			engine := openDefaultEngine(b, storage.SyncAlways)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := Start(ln, Config{Store: kv.New(engine), ConcurrentPipeline: mode.concurrent})
			defer srv.Close(b.Context())
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rd := bufio.NewReader(c)
			const depth = 32
			var req strings.Builder
			for i := range depth {
				if mode.command == "SET" {
					req.WriteString("SET k" + strconv.Itoa(i) + " value\r\n")
				} else {
					req.WriteString("INCR k" + strconv.Itoa(i) + "\r\n")
				}
			}
			payload := []byte(req.String())
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(payload); err != nil {
					b.Fatal(err)
				}
				for range depth {
					line, err := rd.ReadString('\n')
					if err != nil || (line != "+OK\r\n" && line[0] != ':') {
						b.Fatalf("reply %q, %v", line, err)
					}
				}
			}
			b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "cmd/s")
		})
	}
}
