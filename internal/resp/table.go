package resp

import (
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mantisdb/mantisdb/internal/telemetry"
)

// cmdFlags are a command's properties, as COMMAND INFO reports them.
type cmdFlags uint32

const (
	flagWrite cmdFlags = 1 << iota
	flagReadonly
	flagFast
	flagAdmin
	// flagNoAuth commands run before AUTH (Redis's "no-auth").
	flagNoAuth
	// flagNoQueue commands run at once inside MULTI instead of queueing.
	flagNoQueue
	// flagNoMulti commands are refused inside MULTI.
	flagNoMulti
	// flagKeyless commands are barriers in a concurrently dispatched
	// pipeline batch: they touch every key (FLUSHDB) or none in particular
	// but must keep their place (MULTI, EXEC, SELECT).
	flagKeyless
	// flagDefers writes are one engine update (storage.Updater) that can
	// leave its acknowledgement to the event loop under --sync always
	// (storage.CommitDeferral), as blind writes can; not listed by COMMAND.
	flagDefers
)

var flagNames = []struct {
	f    cmdFlags
	name string
}{
	{flagWrite, "write"}, {flagReadonly, "readonly"}, {flagAdmin, "admin"},
	{flagNoAuth, "no_auth"}, {flagNoMulti, "no_multi"}, {flagFast, "fast"},
}

// command is one row of the command table: everything dispatch, COMMAND,
// arity errors, EXEC's key locks and WATCH need to know.
type command struct {
	name string
	// arity counts the command name: N means exactly N arguments, -N at
	// least N (Redis's convention).
	arity int
	flags cmdFlags
	// firstKey, lastKey and step give the key positions: lastKey -1 is
	// the last argument. firstKey 0: no keys.
	firstKey, lastKey, step int
	// category is the ACL category COMMAND INFO lists (@string, @keyspace...).
	category string
	run      func(x *call)
	// subcommands of a container command (CLIENT, COMMAND, CONFIG).
	subcommands []*command
	// blind, when set, reports whether this call of the command writes
	// without reading anything (SET without NX/XX/GET/KEEPTTL, SETEX,
	// MSET): such calls of a pipeline share one engine Write. It may
	// answer false for a call that is blind, never true for one that reads.
	blind func(args [][]byte) bool
	// idx is the command's index in a Server's figures (Server.cstats).
	idx int
	// fam is the dashboard's family of the command, when hasFam.
	fam    telemetry.Family
	hasFam bool
}

// commandStats are a command's figures for INFO commandstats, and its
// Prometheus series, resolved on first use so that a command never run
// shows no series.
type commandStats struct {
	calls    atomic.Int64
	usec     atomic.Int64
	rejected atomic.Int64 // refused before running (arity, auth, EXECABORT)
	failed   atomic.Int64 // ran and answered an error

	// duration is the command's child of the latency histogram.
	duration atomic.Pointer[prometheus.Observer]
}

func (s *commandStats) record(d time.Duration, failed bool) {
	s.calls.Add(1)
	s.usec.Add(d.Microseconds())
	if failed {
		s.failed.Add(1)
	}
}

// always is the command flag set a blind-write check answers for commands
// that never read (SETEX, PSETEX, MSET).
func always([][]byte) bool { return true }

// setIsBlind reports whether a SET call writes without reading: none of
// its options is NX, XX, GET or KEEPTTL. (An option's argument spelled
// like one, as in "EX NX", makes it answer false: a safe mistake.)
func setIsBlind(args [][]byte) bool {
	for _, a := range args[3:] {
		if eqFold(a, "NX") || eqFold(a, "XX") || eqFold(a, "GET") || eqFold(a, "KEEPTTL") {
			return false
		}
	}
	return true
}

// eqFold reports whether b equals the upper-case ASCII word w, ignoring
// case, without allocating.
func eqFold(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// maxCommandName is longer than every command name in the table.
const maxCommandName = 16

// lookupCommand finds the command named name in any letter case, without
// allocating; nil when there is none.
func lookupCommand(name []byte) *command {
	if len(name) > maxCommandName {
		return nil
	}
	var buf [maxCommandName]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	// The conversion in a map index does not allocate.
	return commandTable[string(buf[:len(name)])]
}

// keys returns the key arguments of args under the command's key positions.
func (c *command) keys(args [][]byte) []string {
	if c.firstKey == 0 || c.firstKey >= len(args) {
		return nil
	}
	last := c.lastKey
	if last < 0 {
		last = len(args) + last
	}
	last = min(last, len(args)-1)
	var out []string
	for i := c.firstKey; i <= last; i += c.step {
		out = append(out, string(args[i]))
	}
	return out
}

// family is the dashboard's command family of c, if it has one: SCAN and
// KEYS scan, EXEC is a transaction, other writes write and other reads
// read; connection and server commands are not operations. The table
// keeps it in fam and hasFam.
func (c *command) family() (telemetry.Family, bool) {
	switch {
	case c.name == "scan" || c.name == "keys":
		return telemetry.Scan, true
	case c.name == "exec":
		return telemetry.Txn, true
	case c.flags&flagWrite != 0:
		return telemetry.Write, true
	case c.flags&flagReadonly != 0:
		return telemetry.Read, true
	}
	return 0, false
}

// arityOK reports whether n arguments (the name included) fit the arity.
func (c *command) arityOK(n int) bool {
	if c.arity >= 0 {
		return n == c.arity
	}
	return n >= -c.arity
}

// commandTable maps lower-case names to commands. It is built once.
var commandTable map[string]*command

// getCommand is GET's row: a pipeline gathers consecutive GETs (flushGets).
var getCommand *command

// commandList is the table in name order, for COMMAND and INFO.
var commandList []*command

// numCommands counts the commands and subcommands (their idx values).
var numCommands int

func sub(name string, arity int, flags cmdFlags, run func(*call)) *command {
	return &command{name: name, arity: arity, flags: flags, run: run}
}

func init() {
	const (
		w  = flagWrite
		r  = flagReadonly
		f  = flagFast
		ad = flagAdmin
		na = flagNoAuth
		nq = flagNoQueue
		nm = flagNoMulti
		kl = flagKeyless
		df = flagDefers
	)
	cmds := []*command{
		// Strings (strings.go).
		{name: "get", arity: 2, flags: r | f, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdGet},
		{name: "set", arity: -3, flags: w, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdSet, blind: setIsBlind},
		{name: "setnx", arity: 3, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdSetNX},
		{name: "setex", arity: 4, flags: w, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdSetEx, blind: always},
		{name: "psetex", arity: 4, flags: w, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdPSetEx, blind: always},
		{name: "getset", arity: 3, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdGetSet},
		{name: "getdel", arity: 2, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdGetDel},
		{name: "getex", arity: -2, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdGetEx},
		{name: "mget", arity: -2, flags: r | f, firstKey: 1, lastKey: -1, step: 1, category: "string", run: cmdMGet},
		{name: "mset", arity: -3, flags: w, firstKey: 1, lastKey: -1, step: 2, category: "string", run: cmdMSet, blind: always},
		{name: "msetnx", arity: -3, flags: w, firstKey: 1, lastKey: -1, step: 2, category: "string", run: cmdMSetNX},
		{name: "append", arity: 3, flags: w | df, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdAppend},
		{name: "strlen", arity: 2, flags: r | f, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdStrlen},
		{name: "getrange", arity: 4, flags: r, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdGetRange},
		{name: "substr", arity: 4, flags: r, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdGetRange},
		{name: "setrange", arity: 4, flags: w, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdSetRange},
		{name: "incr", arity: 2, flags: w | f | df, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdIncr},
		{name: "decr", arity: 2, flags: w | f | df, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdDecr},
		{name: "incrby", arity: 3, flags: w | f | df, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdIncrBy},
		{name: "decrby", arity: 3, flags: w | f | df, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdDecrBy},
		{name: "incrbyfloat", arity: 3, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "string", run: cmdIncrByFloat},
		// Keys (keys.go, expire.go, scan.go).
		{name: "del", arity: -2, flags: w, firstKey: 1, lastKey: -1, step: 1, category: "keyspace", run: cmdDel},
		{name: "unlink", arity: -2, flags: w | f, firstKey: 1, lastKey: -1, step: 1, category: "keyspace", run: cmdDel},
		{name: "exists", arity: -2, flags: r | f, firstKey: 1, lastKey: -1, step: 1, category: "keyspace", run: cmdExists},
		{name: "touch", arity: -2, flags: r | f, firstKey: 1, lastKey: -1, step: 1, category: "keyspace", run: cmdExists},
		{name: "type", arity: 2, flags: r | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdType},
		{name: "rename", arity: 3, flags: w, firstKey: 1, lastKey: 2, step: 1, category: "keyspace", run: cmdRename},
		{name: "renamenx", arity: 3, flags: w | f, firstKey: 1, lastKey: 2, step: 1, category: "keyspace", run: cmdRenameNX},
		{name: "copy", arity: -3, flags: w, firstKey: 1, lastKey: 2, step: 1, category: "keyspace", run: cmdCopy},
		{name: "keys", arity: 2, flags: r | kl, category: "keyspace", run: cmdKeys},
		{name: "scan", arity: -2, flags: r | kl, category: "keyspace", run: cmdScan},
		{name: "randomkey", arity: 1, flags: r | kl, category: "keyspace", run: cmdRandomKey},
		{name: "expire", arity: -3, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdExpire},
		{name: "pexpire", arity: -3, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdPExpire},
		{name: "expireat", arity: -3, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdExpireAt},
		{name: "pexpireat", arity: -3, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdPExpireAt},
		{name: "ttl", arity: 2, flags: r | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdTTL},
		{name: "pttl", arity: 2, flags: r | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdPTTL},
		{name: "expiretime", arity: 2, flags: r | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdExpireTime},
		{name: "pexpiretime", arity: 2, flags: r | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdPExpireTime},
		{name: "persist", arity: 2, flags: w | f, firstKey: 1, lastKey: 1, step: 1, category: "keyspace", run: cmdPersist},
		// Transactions (txn.go).
		{name: "multi", arity: 1, flags: f | nq | kl, category: "transaction", run: cmdMulti},
		{name: "exec", arity: 1, flags: nq | kl, category: "transaction", run: cmdExec},
		{name: "discard", arity: 1, flags: f | nq | kl, category: "transaction", run: cmdDiscard},
		{name: "watch", arity: -2, flags: f | nq | nm | kl, firstKey: 1, lastKey: -1, step: 1, category: "transaction", run: cmdWatch},
		{name: "unwatch", arity: 1, flags: f | kl, category: "transaction", run: cmdUnwatch},
		// Connections (conn.go).
		{name: "hello", arity: -1, flags: f | na | kl, category: "connection", run: cmdHello},
		{name: "auth", arity: -2, flags: f | na | kl, category: "connection", run: cmdAuth},
		{name: "ping", arity: -1, flags: f | kl, category: "connection", run: cmdPing},
		{name: "echo", arity: 2, flags: f | kl, category: "connection", run: cmdEcho},
		{name: "quit", arity: -1, flags: f | na | nq | kl, category: "connection", run: cmdQuit},
		{name: "reset", arity: 1, flags: f | na | nq | kl, category: "connection", run: cmdReset},
		{name: "select", arity: 2, flags: f | kl, category: "connection", run: cmdSelect},
		{name: "client", arity: -2, flags: kl, category: "connection", subcommands: []*command{
			sub("setname", 3, f, cmdClientSetName),
			sub("getname", 2, f, cmdClientGetName),
			sub("id", 2, f, cmdClientID),
			sub("info", 2, f, cmdClientInfo),
			sub("list", -2, ad, cmdClientList),
			sub("setinfo", 4, f, cmdClientSetInfo),
			sub("kill", -3, ad, cmdClientKill),
		}},
		// Server (server.go).
		{name: "info", arity: -1, flags: kl, category: "dangerous", run: cmdInfo},
		{name: "dbsize", arity: 1, flags: r | f | kl, category: "keyspace", run: cmdDBSize},
		{name: "flushdb", arity: -1, flags: w | kl, category: "keyspace", run: cmdFlush},
		{name: "flushall", arity: -1, flags: w | kl, category: "keyspace", run: cmdFlush},
		{name: "time", arity: 1, flags: f | kl, category: "fast", run: cmdTime},
		{name: "config", arity: -2, flags: kl, category: "admin", subcommands: []*command{
			sub("get", -3, ad, cmdConfigGet),
		}},
		{name: "command", arity: -1, flags: kl, category: "connection", run: cmdCommand, subcommands: []*command{
			sub("count", 2, 0, cmdCommandCount),
			sub("info", -2, 0, cmdCommandInfo),
			sub("list", -2, 0, cmdCommandList),
			sub("docs", -2, 0, cmdCommandDocs),
		}},
	}
	commandTable = make(map[string]*command, len(cmds))
	for _, c := range cmds {
		if c.step == 0 {
			c.step = 1
		}
		if len(c.name) > maxCommandName {
			panic("resp: command name longer than maxCommandName: " + c.name)
		}
		c.idx = numCommands
		numCommands++
		c.fam, c.hasFam = c.family()
		for _, s := range c.subcommands {
			s.name = c.name + "|" + s.name
			s.category = c.category
			// A subcommand of a keyless container (CLIENT, CONFIG,
			// COMMAND) is keyless too.
			s.flags |= c.flags & flagKeyless
			s.idx = numCommands
			numCommands++
			s.fam, s.hasFam = s.family()
		}
		commandTable[c.name] = c
	}
	getCommand = commandTable["get"]
	commandList = cmds
	sort.Slice(commandList, func(i, j int) bool { return commandList[i].name < commandList[j].name })
}

// lookupSub finds the subcommand named by args[1] of a container command.
func (c *command) lookupSub(name string) *command {
	full := c.name + "|" + strings.ToLower(name)
	for _, s := range c.subcommands {
		if s.name == full {
			return s
		}
	}
	return nil
}
