package resp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// respCommand encodes args as a RESP array (encodeCommand).
func respCommand(args ...string) string { return string(encodeCommand(args)) }

// TestPipelinedGets: consecutive GETs of a pipeline are read together
// (flushGets); each answers exactly what it answers sent alone, in order,
// beside writes, errors and values of every size, and each counts as one
// GET in INFO commandstats. On the memory engine (kv's one-by-one reads)
// and, built with -tags rust, on the Rust engine (one call for all).
func TestPipelinedGets(t *testing.T) {
	engines := map[string]func(t *testing.T) storage.StorageEngine{"memory": nil}
	if storage.RustAvailable {
		engines["rust"] = func(t *testing.T) storage.StorageEngine { return openDefaultEngine(t, storage.SyncNever) }
	}
	for name, open := range engines {
		t.Run(name, func(t *testing.T) {
			ts := startTestServer(t, func(c *Config) {
				if open != nil {
					c.Store = kv.New(open(t))
				}
			})
			setup := ts.raw(t)
			big := strings.Repeat("b", 100<<10)
			setup.send(respCommand("SET", "a", "1") + respCommand("SET", "empty", "") + respCommand("SET", "big", big) +
				respCommand("SET", "t", "x", "PX", "1"))
			setup.expect("+OK\r\n+OK\r\n+OK\r\n+OK\r\n")
			time.Sleep(5 * time.Millisecond)
			cmds := []string{
				respCommand("GET", "a"), respCommand("GET", "missing"), respCommand("GET", "big"),
				respCommand("GET", "empty"), respCommand("GET", "t"), respCommand("SET", "x", "1"),
				respCommand("GET", "x"), respCommand("GET", "a"), respCommand("GET", "a", "b"),
				respCommand("GET", ""), respCommand("GET", "big"), respCommand("INCR", "a"), respCommand("GET", "a"),
			}
			alone := ts.raw(t)
			var want []string
			for _, c := range cmds {
				alone.send(c)
				reps, err := readReplies(alone, 1)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, reps[0])
			}
			// The same again in one pipeline (INCR a made a 2: set it back).
			alone.send(respCommand("SET", "a", "1"))
			if _, err := readReplies(alone, 1); err != nil {
				t.Fatal(err)
			}
			piped := ts.raw(t)
			piped.send(strings.Join(cmds, ""))
			got, err := readReplies(piped, len(cmds))
			if err != nil {
				t.Fatal(err)
			}
			for i := range cmds {
				if got[i] != want[i] {
					t.Fatalf("reply %d to %q: pipelined %.60q, alone %.60q", i, cmds[i][:min(len(cmds[i]), 40)], got[i], want[i])
				}
			}
			info := ts.client(t, 3).Info(context.Background(), "commandstats").Val()
			if !strings.Contains(info, "cmdstat_get:calls=20,") {
				t.Fatalf("commandstats do not count 20 GETs:\n%s", info)
			}
			// RESP3 nulls and values through go-redis's pipeline.
			c := ts.client(t, 3)
			pipe := c.Pipeline()
			ga, gm, gb := pipe.Get(context.Background(), "x"), pipe.Get(context.Background(), "missing"), pipe.Get(context.Background(), "big")
			if _, err := pipe.Exec(context.Background()); err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			if ga.Val() != "1" || gm.Err() != redis.Nil || gb.Val() != big {
				t.Fatalf("RESP3 pipeline: %q, %v, %d bytes", ga.Val(), gm.Err(), len(gb.Val()))
			}
		})
	}
}
