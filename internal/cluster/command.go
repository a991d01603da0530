package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A command is what the cluster agrees on. A node that takes a write builds
// a proposal (ops with relative TTLs, and conditions); the leader turns it
// into an entry by stamping its clock and converting every TTL into an
// absolute expiry from that clock; one raft log entry holds one entry, and
// Apply makes it one atomic change of the engine (or none, if a condition
// fails). Wire format (both kinds), all integers varints:
//
//	byte    kind: kindProposal or kindEntry
//	varint  clock: leader's unix milliseconds (entries; 0 in proposals)
//	uvarint number of conditions, then each: key, uvarint expected version
//	uvarint number of ops, then each: byte op (0 put, 1 delete, 2 put
//	        with an absolute expiry), key, and for a put: value, varint
//	        expiry (op 0 in a proposal: TTL in ms; in an entry, and op 2
//	        anywhere: absolute unix ms; 0 = none)
//	then optional extensions, each a tag byte and its fields (sessions.go):
//	        1 session: id, uvarint sequence number
//	        2 read point: uvarint applied index, varint unix ms of a
//	          transaction's snapshot
//
// Strings are a uvarint length and the bytes.
const (
	kindProposal = 1
	kindEntry    = 2
)

// op is one write of a command.
type op struct {
	del   bool
	key   string
	value string
	// expiry is a TTL in milliseconds in a proposal, an absolute unix
	// millisecond time in an entry; 0 means no expiry.
	expiry int64
	// abs marks a proposal's expiry as absolute already (a user's
	// absolute expiry, such as SET EXAT): the leader keeps it as is.
	abs bool
}

// cond requires key's version to be version when the entry applies (0: the
// key is absent or expired at the entry's clock).
type cond struct {
	key     string
	version uint64
}

// command is a proposal or an entry.
type command struct {
	kind    byte
	clockMs int64
	conds   []cond
	ops     []op
	// session and seq name the proposal for de-duplication in Apply
	// (sessions.go); "" for none.
	session string
	seq     uint64
	// readIndex and readMs are the applied index and the clock of the
	// snapshot a transaction read (0: none): a key it read absent must not
	// have been written since (sessions.go).
	readIndex uint64
	readMs    int64
}

// stamp turns a proposal into the entry the leader logs, at its clock now.
func (c command) stamp(now time.Time) command {
	e := command{kind: kindEntry, clockMs: now.UnixMilli(), conds: c.conds, ops: make([]op, len(c.ops)),
		session: c.session, seq: c.seq, readIndex: c.readIndex, readMs: c.readMs}
	for i, o := range c.ops {
		if !o.del && o.expiry > 0 && !o.abs {
			o.expiry = max(e.clockMs+o.expiry, 1)
		}
		o.abs = false
		e.ops[i] = o
	}
	return e
}

// encode returns the wire form of c.
func (c command) encode() []byte {
	n := 3 + len(c.session) + 6*binary.MaxVarintLen64
	for _, k := range c.conds {
		n += len(k.key) + 2*binary.MaxVarintLen64
	}
	for _, o := range c.ops {
		n += 1 + len(o.key) + len(o.value) + 3*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, c.kind)
	b = binary.AppendVarint(b, c.clockMs)
	b = binary.AppendUvarint(b, uint64(len(c.conds)))
	for _, k := range c.conds {
		b = appendString(b, k.key)
		b = binary.AppendUvarint(b, k.version)
	}
	b = binary.AppendUvarint(b, uint64(len(c.ops)))
	for _, o := range c.ops {
		if o.del {
			b = append(b, 1)
			b = appendString(b, o.key)
			continue
		}
		if o.abs && c.kind == kindProposal {
			b = append(b, 2)
		} else {
			b = append(b, 0)
		}
		b = appendString(b, o.key)
		b = appendString(b, o.value)
		b = binary.AppendVarint(b, o.expiry)
	}
	return c.appendExtensions(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errShortCommand is the cause of every decoding failure of a truncated command.
var errShortCommand = errors.New("truncated")

// decodeCommand parses the wire form of a command.
func decodeCommand(b []byte) (command, error) {
	d := decoder{b: b}
	var c command
	c.kind = d.byte()
	if c.kind != kindProposal && c.kind != kindEntry {
		return command{}, fmt.Errorf("cluster command: unknown kind %d", c.kind)
	}
	c.clockMs = d.varint()
	n := d.count()
	if n > 0 {
		c.conds = make([]cond, n)
	}
	for i := range n {
		c.conds[i] = cond{key: d.string(), version: d.uvarint()}
	}
	n = d.count()
	c.ops = make([]op, n)
	for i := range n {
		switch kind := d.byte(); kind {
		case 0:
			c.ops[i] = op{key: d.string(), value: d.string(), expiry: d.varint()}
		case 1:
			c.ops[i] = op{del: true, key: d.string()}
		case 2:
			c.ops[i] = op{key: d.string(), value: d.string(), expiry: d.varint(), abs: true}
		default:
			if d.err == nil {
				d.err = fmt.Errorf("unknown op %d", kind)
			}
		}
	}
	d.extensions(&c)
	if d.err != nil {
		return command{}, fmt.Errorf("cluster command: %w", d.err)
	}
	return c, nil
}

// decoder reads the wire form; the first error sticks and later reads
// return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShortCommand)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShortCommand)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShortCommand)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left (each item takes at
// least one byte), so a corrupt count cannot make a huge allocation.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.fail(errShortCommand)
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errShortCommand)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
