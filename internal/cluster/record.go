package cluster

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// A replicated key is stored in the local engine as a record: a fixed header
// followed by the user's value. The header carries what every replica must
// agree on and the local engine cannot give in the same way on every node:
//
//	offset size field
//	0      1    format, recordFormat (1)
//	1      8    version: raft index of the entry that wrote the key (big endian)
//	9      8    expiry: absolute, unix milliseconds of the leader's clock; 0 = never
//	17     n    the user's value
//
// Versions are raft indexes, so they are equal on every replica however the
// replica got its state (log replay or snapshot). Expiries come from the
// leader's clock, so a transaction's validation in Apply reads the same
// answer on every replica.
const (
	recordFormat     = 1
	recordHeaderSize = 17
)

// reservedPrefix starts every key the cluster keeps for itself in the local
// engine. User keys with this prefix are refused, and iteration hides them.
const reservedPrefix = "\x00\x00mantisdb.cluster/"

// appliedKey holds the raft index of the last entry applied to the local
// engine (8 bytes, big endian), written in the same engine commit as the
// entries it covers.
const appliedKey = reservedPrefix + "applied"

// expirySlack is how much later than a record's expiry the local engine is
// told to drop it. The record's own expiry decides visibility; the engine's
// TTL only reclaims space, and must never drop a key a replica whose clock
// is behind still sees. Replica clocks must agree within this slack.
const expirySlack = time.Minute

// record is a decoded stored value.
type record struct {
	version  uint64
	expiryMs int64
	value    string
}

// liveAt reports whether the record is visible at nowMs.
func (r record) liveAt(nowMs int64) bool {
	return r.expiryMs == 0 || r.expiryMs > nowMs
}

// encodeRecord returns the stored form of a value.
func encodeRecord(version uint64, expiryMs int64, value string) string {
	var b strings.Builder
	b.Grow(recordHeaderSize + len(value))
	var h [recordHeaderSize]byte
	h[0] = recordFormat
	binary.BigEndian.PutUint64(h[1:9], version)
	binary.BigEndian.PutUint64(h[9:17], uint64(expiryMs))
	b.Write(h[:])
	b.WriteString(value)
	return b.String()
}

// decodeRecord parses a stored value; a malformed one is corruption.
func decodeRecord(key, raw string) (record, error) {
	if len(raw) < recordHeaderSize || raw[0] != recordFormat {
		return record{}, fmt.Errorf("%w: the stored record of key %q is malformed (%d bytes)", storage.ErrCorruption, shortKey(key), len(raw))
	}
	return record{
		version:  binary.BigEndian.Uint64([]byte(raw[1:9])),
		expiryMs: int64(binary.BigEndian.Uint64([]byte(raw[9:17]))),
		value:    raw[recordHeaderSize:],
	}, nil
}

// engineTTL is the TTL to give the local engine for a record expiring at
// expiryMs, judged at the local clock nowMs; ok is false when the record is
// past its expiry by more than the slack, and the key can be deleted.
func engineTTL(expiryMs, nowMs int64) (ttl time.Duration, ok bool) {
	if expiryMs == 0 {
		return 0, true
	}
	ttl = time.Duration(expiryMs-nowMs)*time.Millisecond + expirySlack
	if ttl < time.Millisecond {
		return 0, false
	}
	return ttl, true
}

// isReserved reports whether key belongs to the cluster, not to users.
func isReserved(key string) bool { return strings.HasPrefix(key, reservedPrefix) }

// shortKey keeps error messages short for long keys.
func shortKey(key string) string {
	if len(key) > 64 {
		return key[:64] + "..."
	}
	return key
}
