package resp

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// checkPassword compares a password with --auth-token in constant time.
func (srv *Server) checkPassword(user, password string) bool {
	token := srv.cfg.AuthToken
	userOK := user == "" || user == "default"
	match := subtle.ConstantTimeCompare([]byte(password), []byte(token)) == 1
	return token != "" && userOK && match
}

const errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."

func cmdAuth(x *call) {
	if len(x.args) > 3 {
		x.w.err(errSyntax)
		return
	}
	if x.srv.cfg.AuthToken == "" {
		x.w.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	user, pass := "", x.arg(1)
	if len(x.args) == 3 {
		user, pass = x.arg(1), x.arg(2)
	}
	if !x.srv.checkPassword(user, pass) {
		x.w.err(errWrongPass)
		return
	}
	x.sess.authed = true
	x.w.ok()
}

// cmdHello answers HELLO [protover [AUTH user pass] [SETNAME name]].
func cmdHello(x *call) {
	proto := x.w.proto
	if len(x.args) >= 2 {
		v, err := strconv.ParseInt(x.arg(1), 10, 64)
		if err != nil {
			x.w.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v < 2 || v > 3 {
			x.w.err("NOPROTO unsupported protocol version")
			return
		}
		proto = int(v)
	}
	var name *string
	for i := 2; i < len(x.args); i++ {
		switch opt := strings.ToUpper(x.arg(i)); {
		case opt == "AUTH" && i+2 < len(x.args):
			if x.srv.cfg.AuthToken == "" || !x.srv.checkPassword(x.arg(i+1), x.arg(i+2)) {
				if x.srv.cfg.AuthToken == "" {
					x.w.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
				} else {
					x.w.err(errWrongPass)
				}
				return
			}
			x.sess.authed = true
			i += 2
		case opt == "SETNAME" && i+1 < len(x.args):
			n := x.arg(i + 1)
			if !validClientName(n) {
				x.w.err(errClientName)
				return
			}
			name = &n
			i++
		default:
			x.w.err("ERR Syntax error in HELLO option '" + x.arg(i) + "'")
			return
		}
	}
	if !x.sess.authed {
		x.w.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if name != nil {
		x.sess.setName(*name)
	}
	x.sess.w.proto = proto
	x.w.proto = proto
	x.w.mapHeader(7)
	x.w.bulk("server")
	x.w.bulk("redis")
	x.w.bulk("version")
	x.w.bulk(redisVersion)
	x.w.bulk("proto")
	x.w.int(int64(proto))
	x.w.bulk("id")
	x.w.int(x.sess.id)
	x.w.bulk("mode")
	x.w.bulk("standalone")
	x.w.bulk("role")
	x.w.bulk("master")
	x.w.bulk("modules")
	x.w.array(0)
}

func cmdPing(x *call) {
	switch len(x.args) {
	case 1:
		x.w.simple("PONG")
	case 2:
		x.w.bulk(x.arg(1))
	default:
		x.w.err("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdEcho(x *call) { x.w.bulk(x.arg(1)) }

func cmdQuit(x *call) {
	x.sess.quit = true
	x.w.ok()
}

// cmdReset returns the connection to its state at connect time.
func cmdReset(x *call) {
	sess := x.sess
	sess.endMulti()
	sess.setName("")
	sess.authed = x.srv.cfg.AuthToken == ""
	sess.w.proto = 2
	x.w.proto = 2
	x.w.simple("RESET")
}

func cmdSelect(x *call) {
	db, ok := x.parseInt64Arg(1)
	if !ok {
		return
	}
	if db != 0 {
		x.w.err(errInvalidDB)
		return
	}
	x.w.ok()
}

const errClientName = "ERR Client names cannot contain spaces, newlines or special characters."

// validClientName accepts what Redis does: printable ASCII without spaces.
func validClientName(n string) bool {
	for i := 0; i < len(n); i++ {
		if n[i] < '!' || n[i] > '~' {
			return false
		}
	}
	return true
}

func (sess *session) setName(n string) {
	sess.mu.Lock()
	sess.name = n
	sess.mu.Unlock()
}

func cmdClientSetName(x *call) {
	if !validClientName(x.arg(2)) {
		x.w.err(errClientName)
		return
	}
	x.sess.setName(x.arg(2))
	x.w.ok()
}

func cmdClientGetName(x *call) {
	x.sess.mu.Lock()
	n := x.sess.name
	x.sess.mu.Unlock()
	x.bulkOrNull(n, n != "", nil)
}

func cmdClientID(x *call) { x.w.int(x.sess.id) }

func cmdClientInfo(x *call) { x.w.verbatim(x.sess.info() + "\n") }

func cmdClientList(x *call) {
	var ids []int64
	if len(x.args) > 2 {
		if len(x.args) < 4 || !strings.EqualFold(x.arg(2), "ID") {
			if strings.EqualFold(x.arg(2), "TYPE") && len(x.args) == 4 {
				if t := strings.ToLower(x.arg(3)); t != "normal" && t != "master" && t != "replica" && t != "pubsub" {
					x.w.err("ERR Unknown client type '" + x.arg(3) + "'")
					return
				}
				if strings.ToLower(x.arg(3)) != "normal" {
					x.w.verbatim("")
					return
				}
			} else {
				x.w.err(errSyntax)
				return
			}
		} else {
			for _, a := range x.args[3:] {
				id, err := strconv.ParseInt(string(a), 10, 64)
				if err != nil || id <= 0 {
					x.w.err("ERR Invalid client ID")
					return
				}
				ids = append(ids, id)
			}
		}
	}
	var b strings.Builder
	for _, s := range x.srv.clients() {
		if ids != nil && !slices.Contains(ids, s.id) {
			continue
		}
		b.WriteString(s.info())
		b.WriteByte('\n')
	}
	x.w.verbatim(b.String())
}

func cmdClientSetInfo(x *call) {
	attr, val := strings.ToLower(x.arg(2)), x.arg(3)
	if !validClientName(val) && val != "" {
		x.w.err("ERR " + strings.ToUpper(attr) + " cannot contain spaces, newlines or special characters.")
		return
	}
	x.sess.mu.Lock()
	defer x.sess.mu.Unlock()
	switch attr {
	case "lib-name":
		x.sess.libName = val
	case "lib-ver":
		x.sess.libVer = val
	default:
		x.w.err("ERR Unrecognized option '" + x.arg(2) + "'")
		return
	}
	x.w.ok()
}

// cmdClientKill closes other connections: CLIENT KILL addr, or the filter
// form with ID, ADDR, LADDR, SKIPME.
func cmdClientKill(x *call) {
	if len(x.args) == 3 {
		for _, s := range x.srv.clients() {
			if s.raddr == x.arg(2) {
				x.kill(s)
				x.w.ok()
				return
			}
		}
		x.w.err("ERR No such client")
		return
	}
	if len(x.args)%2 != 0 {
		x.w.err(errSyntax)
		return
	}
	var id int64
	var addr, laddr string
	skipMe := true
	for i := 2; i < len(x.args); i += 2 {
		v := x.arg(i + 1)
		switch strings.ToUpper(x.arg(i)) {
		case "ID":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				x.w.err("ERR client-id should be greater than 0")
				return
			}
			id = n
		case "ADDR":
			addr = v
		case "LADDR":
			laddr = v
		case "SKIPME":
			switch strings.ToLower(v) {
			case "yes":
				skipMe = true
			case "no":
				skipMe = false
			default:
				x.w.err(errSyntax)
				return
			}
		case "TYPE", "USER", "MAXAGE":
			x.w.err("ERR CLIENT KILL " + strings.ToUpper(x.arg(i)) + " is not supported by this server; use ID, ADDR or LADDR")
			return
		default:
			x.w.err(errSyntax)
			return
		}
	}
	killed := 0
	for _, s := range x.srv.clients() {
		if (id != 0 && s.id != id) || (addr != "" && s.raddr != addr) ||
			(laddr != "" && s.laddr != laddr) || (skipMe && s == x.sess) {
			continue
		}
		x.kill(s)
		killed++
	}
	x.w.int(int64(killed))
}

// kill closes s for CLIENT KILL. The caller's own connection closes right
// after this command's reply, running none of the commands pipelined
// after it (Redis's CLIENT_CLOSE_AFTER_REPLY); another one closes at once.
func (x *call) kill(s *session) {
	if s == x.sess {
		s.quit = true
		return
	}
	s.kill()
}

// info is the session's CLIENT INFO / CLIENT LIST line.
func (sess *session) info() string {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	now := time.Now()
	flags := "N"
	if sess.infoMulti >= 0 {
		flags = "x"
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=%s db=0 sub=0 psub=0 ssub=0 multi=%d watch=%d qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s user=default redir=-1 resp=%d lib-name=%s lib-ver=%s",
		sess.id, sess.raddr, sess.laddr, sess.name,
		int64(now.Sub(sess.created).Seconds()), int64(now.Sub(sess.active).Seconds()), flags,
		sess.infoMulti, sess.infoWatch, orNULL(sess.lastCmd), sess.infoProto, sess.libName, sess.libVer)
}

func orNULL(s string) string {
	if s == "" {
		return "NULL"
	}
	return s
}

func sortSessions(s []*session) {
	slices.SortFunc(s, func(a, b *session) int { return int(a.id - b.id) })
}
