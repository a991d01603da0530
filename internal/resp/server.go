package resp

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
)

// redisVersion is the Redis version whose behaviour the server follows;
// clients read it from HELLO and INFO to pick their features.
const redisVersion = "7.0.0"

func cmdDBSize(x *call) {
	var n int64
	err := x.view(func(tx *kv.Tx) (err error) {
		n, err = tx.DBSize(x.ctx())
		return err
	})
	x.intOrFail(n, err)
}

// cmdFlush answers FLUSHDB and FLUSHALL [ASYNC|SYNC]: every key deleted in
// one commit (the deletion is always synchronous).
func cmdFlush(x *call) {
	if len(x.args) > 2 {
		x.w.err(errSyntax)
		return
	}
	if len(x.args) == 2 {
		if m := strings.ToUpper(x.arg(1)); m != "ASYNC" && m != "SYNC" {
			x.w.err(errSyntax)
			return
		}
	}
	err := x.blind(func(tx *kv.Tx) error {
		_, err := tx.FlushAll(x.ctx())
		return err
	})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.ok()
}

func cmdTime(x *call) {
	now := time.Now()
	x.w.array(2)
	x.w.bulk(strconv.FormatInt(now.Unix(), 10))
	x.w.bulk(strconv.FormatInt(int64(now.Nanosecond()/1000), 10))
}

// configValues are the settings CONFIG GET reports: the ones tools probe,
// with the values that describe this server.
func (srv *Server) configValues() [][2]string {
	appendonly := "no"
	if srv.cfg.Sync == "always" || srv.cfg.Sync == "interval" {
		appendonly = "yes"
	}
	fsync := map[string]string{"always": "always", "interval": "everysec", "never": "no"}[srv.cfg.Sync]
	if fsync == "" {
		fsync = "no"
	}
	timeout := strconv.FormatInt(int64(srv.cfg.IdleTimeout/time.Second), 10)
	return [][2]string{
		{"appendfsync", fsync},
		{"appendonly", appendonly},
		{"databases", "1"},
		{"maxclients", strconv.Itoa(srv.cfg.MaxConnections)},
		{"maxmemory", "0"},
		{"maxmemory-policy", "noeviction"},
		{"port", srv.port()},
		{"proto-max-bulk-len", strconv.FormatInt(srv.cfg.MaxBulk, 10)},
		{"save", ""},
		{"timeout", timeout},
	}
}

func (srv *Server) port() string {
	if a := srv.Addr(); a != nil {
		if i := strings.LastIndexByte(a.String(), ':'); i >= 0 {
			return a.String()[i+1:]
		}
	}
	return "0"
}

// cmdConfigGet answers CONFIG GET pattern [pattern ...] as a map.
func cmdConfigGet(x *call) {
	var out [][2]string
	for _, kv := range x.srv.configValues() {
		for _, p := range x.args[2:] {
			if matchNoCase(string(p), kv[0]) {
				out = append(out, kv)
				break
			}
		}
	}
	x.w.mapHeader(len(out))
	for _, kv := range out {
		x.w.bulk(kv[0])
		x.w.bulk(kv[1])
	}
}

func matchNoCase(pattern, s string) bool {
	return kv.MatchGlob(strings.ToLower(pattern), s)
}

// infoSections lists INFO's sections in Redis's order.
var infoSections = []string{"server", "clients", "memory", "persistence", "stats", "replication", "cpu", "commandstats", "keyspace"}

// cmdInfo answers INFO [section ...]: "default" and no argument give every
// section but commandstats; "all" and "everything" give all of them.
func cmdInfo(x *call) {
	want := map[string]bool{}
	for _, a := range x.args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := want["all"] || want["everything"]
	def := len(want) == 0 || want["default"]
	var b strings.Builder
	for _, sec := range infoSections {
		if !(all || want[sec] || (def && sec != "commandstats")) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		x.srv.writeInfoSection(&b, sec, x)
	}
	x.w.verbatim(b.String())
}

func (srv *Server) writeInfoSection(b *strings.Builder, sec string, x *call) {
	line := func(k string, v any) { fmt.Fprintf(b, "%s:%v\r\n", k, v) }
	b.WriteString("# " + strings.ToUpper(sec[:1]) + sec[1:] + "\r\n")
	switch sec {
	case "server":
		line("redis_version", redisVersion)
		line("mantisdb_version", srv.cfg.Version)
		line("redis_mode", "standalone")
		line("os", runtime.GOOS+" "+runtime.GOARCH)
		line("arch_bits", strconv.Itoa(strconv.IntSize))
		line("go_version", runtime.Version())
		line("process_id", os.Getpid())
		line("tcp_port", srv.port())
		up := time.Since(srv.started)
		line("uptime_in_seconds", int64(up.Seconds()))
		line("uptime_in_days", int64(up.Hours()/24))
		line("engine", srv.store.Engine().Name())
	case "clients":
		line("connected_clients", srv.connected())
		line("maxclients", srv.cfg.MaxConnections)
		line("blocked_clients", 0)
	case "memory":
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		// The Go heap; the Rust engine's own memory (index, cache) is in
		// /api/v1/stats.
		line("used_memory", ms.HeapAlloc)
		line("used_memory_human", humanBytes(ms.HeapAlloc))
		line("used_memory_rss", ms.Sys)
		line("maxmemory", 0)
		line("maxmemory_policy", "noeviction")
	case "persistence":
		// Tools probe these Redis fields; the log is the engine's own, so
		// no snapshot or rewrite is ever in progress.
		line("loading", 0)
		line("mantisdb_sync", srv.cfg.Sync)
		line("rdb_bgsave_in_progress", 0)
		line("aof_enabled", boolInt(srv.cfg.Sync == "always" || srv.cfg.Sync == "interval"))
		line("aof_rewrite_in_progress", 0)
	case "stats":
		line("total_connections_received", srv.totalConns.Load())
		line("total_commands_processed", srv.totalCommands.Load())
		line("rejected_connections", srv.rejectedConns.Load())
		if st, err := srv.store.Engine().Stats(x.ctx()); err == nil {
			line("mantisdb_cache_hits", st.CacheHits)
			line("mantisdb_cache_misses", st.CacheMisses)
			line("mantisdb_engine_reads", st.Reads)
			line("mantisdb_engine_writes", st.Writes)
			line("mantisdb_engine_deletes", st.Deletes)
			line("mantisdb_storage_syncs", st.Syncs)
		}
	case "replication":
		srv.writeReplication(line)
	case "cpu":
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			line("used_cpu_sys", fmt.Sprintf("%.6f", float64(ru.Stime.Nano())/1e9))
			line("used_cpu_user", fmt.Sprintf("%.6f", float64(ru.Utime.Nano())/1e9))
		}
	case "commandstats":
		srv.writeCommandStats(b)
	case "keyspace":
		var keys, expiring int64
		err := srv.store.View(x.ctx(), func(tx *kv.Tx) (err error) {
			keys, expiring, err = tx.KeyspaceInfo(x.ctx())
			return err
		})
		if err == nil && keys > 0 {
			line("db0", fmt.Sprintf("keys=%d,expires=%d", keys, expiring))
		}
	}
}

// writeCommandStats writes one cmdstat_ line per command that ran or was
// refused, in Redis's format.
func (srv *Server) writeCommandStats(b *strings.Builder) {
	each := func(c *command) {
		st := srv.statsOf(c)
		calls, rejected := st.calls.Load(), st.rejected.Load()
		if calls == 0 && rejected == 0 {
			return
		}
		usec := st.usec.Load()
		per := 0.0
		if calls > 0 {
			per = float64(usec) / float64(calls)
		}
		fmt.Fprintf(b, "cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d\r\n",
			c.name, calls, usec, per, rejected, st.failed.Load())
	}
	for _, c := range commandList {
		each(c)
		for _, s := range c.subcommands {
			each(s)
		}
	}
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// cmdCommand answers bare COMMAND: every command's COMMAND INFO entry.
func cmdCommand(x *call) {
	x.w.array(len(commandList))
	for _, c := range commandList {
		x.writeCommandInfo(c)
	}
}

func cmdCommandCount(x *call) { x.w.int(int64(len(commandList))) }

func cmdCommandInfo(x *call) {
	if len(x.args) == 2 {
		cmdCommand(x)
		return
	}
	x.w.array(len(x.args) - 2)
	for _, a := range x.args[2:] {
		c := lookupCommand(a)
		if c == nil {
			if parts := strings.SplitN(strings.ToLower(string(a)), "|", 2); len(parts) == 2 && commandTable[parts[0]] != nil {
				c = commandTable[parts[0]].lookupSub(parts[1])
			}
		}
		if c == nil {
			x.w.nullArray()
			continue
		}
		x.writeCommandInfo(c)
	}
}

// cmdCommandList answers COMMAND LIST [FILTERBY PATTERN p | ACLCAT c].
func cmdCommandList(x *call) {
	var names []string
	filter := func(c *command) bool { return true }
	if len(x.args) > 2 {
		if len(x.args) != 5 || !strings.EqualFold(x.arg(2), "FILTERBY") {
			x.w.err(errSyntax)
			return
		}
		v := x.arg(4)
		switch strings.ToUpper(x.arg(3)) {
		case "PATTERN":
			filter = func(c *command) bool { return matchNoCase(v, c.name) }
		case "ACLCAT":
			filter = func(c *command) bool { return strings.EqualFold(c.category, v) }
		case "MODULE":
			filter = func(*command) bool { return false }
		default:
			x.w.err(errSyntax)
			return
		}
	}
	for _, c := range commandList {
		if filter(c) {
			names = append(names, c.name)
		}
		for _, s := range c.subcommands {
			if filter(s) {
				names = append(names, s.name)
			}
		}
	}
	x.w.bulks(names)
}

// cmdCommandDocs refuses: the server carries no command documentation,
// and redis-cli falls back to its built-in help on this error.
func cmdCommandDocs(x *call) {
	x.w.err("ERR COMMAND DOCS is not supported by this server")
}

// writeCommandInfo writes one COMMAND INFO entry as Redis 7.0 does: name,
// arity, flags, first key, last key, step, ACL categories, tips, key
// specs, subcommands.
func (x *call) writeCommandInfo(c *command) {
	w := x.w
	w.array(10)
	w.bulk(c.name)
	w.int(int64(c.arity))
	var flags []string
	for _, f := range flagNames {
		if c.flags&f.f != 0 {
			flags = append(flags, f.name)
		}
	}
	w.set(len(flags))
	for _, f := range flags {
		w.simple(f)
	}
	w.int(int64(c.firstKey))
	w.int(int64(c.lastKey))
	if c.firstKey == 0 {
		w.int(0)
	} else {
		w.int(int64(c.step))
	}
	cats := []string{"@" + c.category}
	if c.flags&flagWrite != 0 {
		cats = append(cats, "@write")
	}
	if c.flags&flagReadonly != 0 {
		cats = append(cats, "@read")
	}
	if c.flags&flagFast != 0 {
		cats = append(cats, "@fast")
	} else {
		cats = append(cats, "@slow")
	}
	w.set(len(cats))
	for _, s := range cats {
		w.simple(s)
	}
	w.set(0)
	w.array(0)
	w.array(len(c.subcommands))
	for _, s := range c.subcommands {
		x.writeCommandInfo(s)
	}
}
