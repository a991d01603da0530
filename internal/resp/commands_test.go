package resp

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// step is one command of a scripted session and its expected answer as
// go-redis decodes it: a value, redis.Nil for a null, or an error text.
type step struct {
	args []any
	want any
}

func errText(s string) error { return errors.New(s) }

var nilReply = redis.Nil

// runSteps sends steps in order on c and compares each answer.
func runSteps(t *testing.T, c *redis.Client, steps []step) {
	t.Helper()
	for _, s := range steps {
		got, err := c.Do(t.Context(), s.args...).Result()
		switch want := s.want.(type) {
		case error:
			if err == nil || err.Error() != want.Error() {
				t.Errorf("%v: got %#v, %v; want error %q", s.args, got, err, want)
			}
		default:
			if err != nil {
				t.Errorf("%v: error %v, want %#v", s.args, err, s.want)
			} else if got = errorsAsText(got); !reflect.DeepEqual(got, s.want) {
				t.Errorf("%v: got %#v, want %#v", s.args, got, s.want)
			}
		}
	}
}

// errorsAsText turns error elements of an array reply (EXEC's) into
// "error:<text>" strings, so a table can spell them.
func errorsAsText(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = errorsAsText(e)
		}
		return out
	case error:
		return "error:" + v.Error()
	}
	return v
}

// TestCommands walks every command with the options that have rules and
// the errors they give, in RESP2 and RESP3.
func TestCommands(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			ts := startTestServer(t, nil)
			c := ts.client(t, proto, func(o *redis.Options) { o.PoolSize = 1 })
			future := time.Now().Add(time.Hour).Unix()
			runSteps(t, c, []step{
				// SET and its options.
				{[]any{"set", "k", "v"}, "OK"},
				{[]any{"get", "k"}, "v"},
				{[]any{"set", "k", "w", "nx"}, nilReply},
				{[]any{"set", "new", "w", "xx"}, nilReply},
				{[]any{"set", "k", "w", "xx", "get"}, "v"},
				{[]any{"set", "nx1", "a", "nx", "get"}, nilReply},
				{[]any{"set", "k", "x", "nx", "get"}, "w"},
				{[]any{"set", "k", "v", "nx", "xx"}, errText("ERR syntax error")},
				{[]any{"set", "k", "v", "ex", "10", "px", "100"}, errText("ERR syntax error")},
				{[]any{"set", "k", "v", "keepttl", "ex", "10"}, errText("ERR syntax error")},
				{[]any{"set", "k", "v", "ex"}, errText("ERR syntax error")},
				{[]any{"set", "k", "v", "ex", "0"}, errText("ERR invalid expire time in 'set' command")},
				{[]any{"set", "k", "v", "ex", "x"}, errText("ERR value is not an integer or out of range")},
				{[]any{"set", "k", "v", "ex", "9223372036854775807"}, errText("ERR invalid expire time in 'set' command")},
				{[]any{"set", "k", "v", "ex", "100"}, "OK"},
				{[]any{"ttl", "k"}, int64(100)},
				{[]any{"set", "k", "v2", "keepttl"}, "OK"},
				{[]any{"ttl", "k"}, int64(100)},
				{[]any{"set", "k", "v3"}, "OK"},
				{[]any{"ttl", "k"}, int64(-1)},
				{[]any{"set", "k", "v", "exat", fmt.Sprint(future)}, "OK"},
				{[]any{"expiretime", "k"}, future},
				{[]any{"pexpiretime", "k"}, future * 1000},
				{[]any{"set", "k", "v", "pxat", "1"}, "OK"},
				{[]any{"get", "k"}, nilReply},
				{[]any{"set"}, errText("ERR wrong number of arguments for 'set' command")},
				{[]any{"setnx", "k", "1"}, int64(1)},
				{[]any{"setnx", "k", "2"}, int64(0)},
				{[]any{"setex", "se", "50", "v"}, "OK"},
				{[]any{"ttl", "se"}, int64(50)},
				{[]any{"setex", "se", "-1", "v"}, errText("ERR invalid expire time in 'setex' command")},
				{[]any{"psetex", "pe", "50000", "v"}, "OK"},
				{[]any{"psetex", "pe", "0", "v"}, errText("ERR invalid expire time in 'psetex' command")},
				{[]any{"getset", "k", "9"}, "1"},
				{[]any{"getset", "fresh", "9"}, nilReply},
				{[]any{"getdel", "missing"}, nilReply},
				{[]any{"getdel", "k"}, "9"},
				{[]any{"exists", "k"}, int64(0)},
				// GETEX.
				{[]any{"set", "g", "v"}, "OK"},
				{[]any{"getex", "g", "ex", "100"}, "v"},
				{[]any{"ttl", "g"}, int64(100)},
				{[]any{"getex", "g", "persist"}, "v"},
				{[]any{"ttl", "g"}, int64(-1)},
				{[]any{"getex", "g", "persist", "ex", "1"}, errText("ERR syntax error")},
				{[]any{"getex", "g", "keepttl"}, errText("ERR syntax error")},
				{[]any{"getex", "nokey", "ex", "0"}, nilReply},
				{[]any{"getex", "g", "ex", "0"}, errText("ERR invalid expire time in 'getex' command")},
				{[]any{"getex", "g", "exat", "1"}, "v"},
				{[]any{"exists", "g"}, int64(0)},
				// Multi-key strings.
				{[]any{"mset", "a", "1", "b", "2"}, "OK"},
				{[]any{"mset", "a", "1", "b"}, errText("ERR wrong number of arguments for 'mset' command")},
				{[]any{"mget", "a", "nokey", "b"}, []any{"1", nil, "2"}},
				{[]any{"msetnx", "a", "5", "c", "3"}, int64(0)},
				{[]any{"msetnx", "c", "3", "d", "4"}, int64(1)},
				{[]any{"append", "a", "23"}, int64(3)},
				{[]any{"strlen", "a"}, int64(3)},
				{[]any{"strlen", "nokey"}, int64(0)},
				{[]any{"getrange", "a", "0", "-2"}, "12"},
				{[]any{"getrange", "nokey", "0", "-1"}, ""},
				{[]any{"getrange", "a", "x", "1"}, errText("ERR value is not an integer or out of range")},
				{[]any{"substr", "a", "1", "1"}, "2"},
				{[]any{"setrange", "a", "1", "xy"}, int64(3)},
				{[]any{"get", "a"}, "1xy"},
				{[]any{"setrange", "a", "-1", "x"}, errText("ERR offset is out of range")},
				{[]any{"setrange", "z", "2", "q"}, int64(3)},
				{[]any{"get", "z"}, "\x00\x00q"},
				// Counters.
				{[]any{"incr", "n"}, int64(1)},
				{[]any{"incrby", "n", "10"}, int64(11)},
				{[]any{"decr", "n"}, int64(10)},
				{[]any{"decrby", "n", "20"}, int64(-10)},
				{[]any{"incrby", "n", "1.5"}, errText("ERR value is not an integer or out of range")},
				{[]any{"incr", "a"}, errText("ERR value is not an integer or out of range")},
				{[]any{"set", "max", "9223372036854775807"}, "OK"},
				{[]any{"incr", "max"}, errText("ERR increment or decrement would overflow")},
				{[]any{"decrby", "n", "-9223372036854775808"}, errText("ERR decrement would overflow")},
				{[]any{"incrbyfloat", "f", "10.5"}, "10.5"},
				{[]any{"incrbyfloat", "f", "0.1"}, "10.6"},
				{[]any{"incrbyfloat", "f", "5.0e3"}, "5010.60000000000000009"}, // as Redis prints it
				{[]any{"incrbyfloat", "f", "x"}, errText("ERR value is not a valid float")},
				{[]any{"incrbyfloat", "a", "1"}, errText("ERR value is not a valid float")},
				{[]any{"incrbyfloat", "f", "inf"}, errText("ERR increment would produce NaN or Infinity")},
				// Keys.
				{[]any{"del", "a", "b", "nokey"}, int64(2)},
				{[]any{"unlink", "c"}, int64(1)},
				{[]any{"exists", "d", "d", "nokey"}, int64(2)},
				{[]any{"touch", "d", "nokey"}, int64(1)},
				{[]any{"type", "d"}, "string"},
				{[]any{"type", "nokey"}, "none"},
				{[]any{"rename", "nokey", "x"}, errText("ERR no such key")},
				{[]any{"rename", "d", "d2"}, "OK"},
				{[]any{"renamenx", "d2", "n"}, int64(0)},
				{[]any{"renamenx", "d2", "d"}, int64(1)},
				{[]any{"rename", "d", "d"}, "OK"},
				{[]any{"copy", "d", "d"}, errText("ERR source and destination objects are the same")},
				{[]any{"copy", "d", "n"}, int64(0)},
				{[]any{"copy", "d", "n", "replace"}, int64(1)},
				{[]any{"copy", "d", "e", "db", "0"}, int64(1)},
				{[]any{"copy", "d", "e2", "db", "1"}, errText("ERR DB index is out of range")},
				{[]any{"copy", "d", "e2", "bogus"}, errText("ERR syntax error")},
				{[]any{"copy", "nokey", "e3"}, int64(0)},
				// Expiry.
				{[]any{"expire", "nokey", "10"}, int64(0)},
				{[]any{"expire", "d", "100", "xx"}, int64(0)},
				{[]any{"expire", "d", "100", "gt"}, int64(0)},
				{[]any{"expire", "d", "100", "nx"}, int64(1)},
				{[]any{"expire", "d", "200", "nx"}, int64(0)},
				{[]any{"expire", "d", "50", "gt"}, int64(0)},
				{[]any{"expire", "d", "200", "gt"}, int64(1)},
				{[]any{"expire", "d", "300", "lt"}, int64(0)},
				{[]any{"expire", "d", "150", "xx", "lt"}, int64(1)},
				{[]any{"ttl", "d"}, int64(150)},
				{[]any{"expire", "d", "1", "nx", "xx"}, errText("ERR NX and XX, GT or LT options at the same time are not compatible")},
				{[]any{"expire", "d", "1", "gt", "lt"}, errText("ERR GT and LT options at the same time are not compatible")},
				{[]any{"expire", "d", "1", "foo"}, errText("ERR Unsupported option foo")},
				{[]any{"expire", "d", "x"}, errText("ERR value is not an integer or out of range")},
				{[]any{"expire", "d", "9223372036854775807"}, errText("ERR invalid expire time in 'expire' command")},
				{[]any{"pexpire", "d", "100000"}, int64(1)},
				{[]any{"ttl", "d"}, int64(100)},
				{[]any{"pexpireat", "d", fmt.Sprint(future * 1000)}, int64(1)},
				{[]any{"expiretime", "d"}, future},
				{[]any{"expireat", "d", fmt.Sprint(future + 5)}, int64(1)},
				{[]any{"expiretime", "d"}, future + 5},
				{[]any{"pexpireat", "d", fmt.Sprint(future*1000 + 700)}, int64(1)},
				{[]any{"expiretime", "d"}, future + 1},
				{[]any{"pexpireat", "d", fmt.Sprint(future*1000 + 499)}, int64(1)},
				{[]any{"expiretime", "d"}, future},
				{[]any{"persist", "d"}, int64(1)},
				{[]any{"persist", "d"}, int64(0)},
				{[]any{"ttl", "nokey"}, int64(-2)},
				{[]any{"pttl", "d"}, int64(-1)},
				{[]any{"expiretime", "nokey"}, int64(-2)},
				{[]any{"expire", "e", "-1"}, int64(1)},
				{[]any{"exists", "e"}, int64(0)},
				// Keyspace.
				{[]any{"flushdb"}, "OK"},
				{[]any{"mset", "u:1", "a", "u:2", "b", "v:1", "c"}, "OK"},
				{[]any{"keys", "u:*"}, []any{"u:1", "u:2"}},
				{[]any{"dbsize"}, int64(3)},
				{[]any{"flushall", "async"}, "OK"},
				{[]any{"flushall", "later"}, errText("ERR syntax error")},
				{[]any{"dbsize"}, int64(0)},
				{[]any{"randomkey"}, nilReply},
				// Connection and server.
				{[]any{"ping"}, "PONG"},
				{[]any{"ping", "hi"}, "hi"},
				{[]any{"echo", "hi"}, "hi"},
				{[]any{"select", "0"}, "OK"},
				{[]any{"select", "1"}, errText("ERR DB index is out of range")},
				{[]any{"client", "setname", "tester"}, "OK"},
				{[]any{"client", "getname"}, "tester"},
				{[]any{"client", "setname", "bad name"}, errText("ERR Client names cannot contain spaces, newlines or special characters.")},
				{[]any{"client", "nope"}, errText("ERR unknown subcommand 'nope'. Try CLIENT HELP.")},
				{[]any{"client", "setinfo", "lib-name", "x"}, "OK"},
				{[]any{"auth", "x"}, errText("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")},
				{[]any{"command", "count"}, int64(len(commandList))},
				{[]any{"command", "docs", "get"}, errText("ERR COMMAND DOCS is not supported by this server")},
				{[]any{"hset", "h", "f", "v"}, errText("ERR unknown command 'hset', with args beginning with: 'h' 'f' 'v' ")},
				{[]any{"get", "a", "b"}, errText("ERR wrong number of arguments for 'get' command")},
				{[]any{"scan", "x"}, errText("ERR invalid cursor")},
				{[]any{"scan", "0", "count", "0"}, errText("ERR syntax error")},
				{[]any{"scan", "0", "match"}, errText("ERR syntax error")},
				{[]any{"multi"}, "OK"},
				{[]any{"multi"}, errText("ERR MULTI calls can not be nested")},
				{[]any{"watch", "x"}, errText("ERR WATCH inside MULTI is not allowed")},
				{[]any{"set", "t", "1"}, "QUEUED"},
				{[]any{"incr", "t"}, "QUEUED"},
				{[]any{"incrby", "t", "x"}, "QUEUED"},
				{[]any{"exec"}, []any{"OK", int64(2), "error:ERR value is not an integer or out of range"}},
				{[]any{"exec"}, errText("ERR EXEC without MULTI")},
				{[]any{"discard"}, errText("ERR DISCARD without MULTI")},
				{[]any{"multi"}, "OK"},
				{[]any{"nosuch"}, errText("ERR unknown command 'nosuch', with args beginning with: ")},
				{[]any{"set", "t", "2"}, "QUEUED"},
				{[]any{"exec"}, errText("EXECABORT Transaction discarded because of previous errors.")},
				{[]any{"get", "t"}, "2"},
			})
		})
	}
}

// TestServerIntrospection: INFO, CLIENT LIST, COMMAND INFO and CONFIG GET
// answer what tools read from them.
func TestServerIntrospection(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			ts := startTestServer(t, nil)
			c := ts.client(t, proto, func(o *redis.Options) { o.PoolSize = 1 })
			ctx := t.Context()
			if err := c.Set(ctx, "k", "v", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			_ = c.Incr(ctx, "k").Err() // a failed call
			info, err := c.Info(ctx, "everything").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"redis_version:7.0.0", "mantisdb_version:test", "connected_clients:1",
				"cmdstat_set:calls=1,", "cmdstat_incr:calls=1,", "failed_calls=1", "db0:keys=1,expires=1"} {
				if !strings.Contains(info, want) {
					t.Errorf("INFO lacks %q:\n%s", want, info)
				}
			}
			list, err := c.ClientList(ctx).Result()
			if err != nil || !strings.Contains(list, fmt.Sprintf("resp=%d", proto)) {
				t.Errorf("CLIENT LIST = %q, %v", list, err)
			}
			cmds, err := c.Command(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if g := cmds["get"]; g == nil || g.Arity != 2 || g.FirstKeyPos != 1 || !g.ReadOnly {
				t.Errorf("COMMAND INFO get = %+v", g)
			}
			if m := cmds["mset"]; m == nil || m.Arity != -3 || m.StepCount != 2 || m.LastKeyPos != -1 {
				t.Errorf("COMMAND INFO mset = %+v", m)
			}
			cfg, err := c.ConfigGet(ctx, "save").Result()
			if err != nil || len(cfg) != 1 || cfg["save"] != "" {
				t.Errorf("CONFIG GET save = %v, %v", cfg, err)
			}
			var keys []string
			for i := range 25 {
				if err := c.Set(ctx, fmt.Sprintf("s%02d", i), "v", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			iter := c.Scan(ctx, 0, "s*", 4).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil || len(keys) != 25 {
				t.Errorf("SCAN iterator: %d keys, %v", len(keys), err)
			}
		})
	}
}
