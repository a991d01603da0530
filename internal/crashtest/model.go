package crashtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// keyPrefix starts every key the harness writes; the verification scan
// reads everything under it, so a key the harness never wrote is caught.
const keyPrefix = "crash/"

// keyName is the key of index i of the key space.
func keyName(i int) string { return fmt.Sprintf("%s%05d", keyPrefix, i) }

// state is what one key holds: nothing, or the value written for it by
// the operation with id (of size bytes, see valueBytes).
type state struct {
	present bool
	id      uint64
	size    int
}

func (s state) String() string {
	if !s.present {
		return "absent"
	}
	return fmt.Sprintf("value of op %d (%d bytes)", s.id, s.size)
}

// write is one key's change inside an operation.
type write struct {
	key  int // index in the key space
	del  bool
	size int // value length of a put
}

// opKind is what an operation sends: a single put or delete of one key, or
// an atomic batch of several keys.
type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opBatch
)

func (k opKind) String() string {
	switch k {
	case opPut:
		return "put"
	case opDelete:
		return "delete"
	default:
		return "atomic batch"
	}
}

// op is one request a writer sends. Its id is unique over the whole run
// and is written into every value it stores, so a value found on disk
// names the operation that wrote it.
type op struct {
	id     uint64
	kind   opKind
	writes []write
}

// after is the state a write leaves on its key.
func (o *op) after(w write) state {
	if w.del {
		return state{}
	}
	return state{present: true, id: o.id, size: w.size}
}

// headerLen is the fixed head of every value: the op id and the key index,
// so a value found under the wrong key, or a stale one, is recognised.
const headerLen = 12

// minValueSize is the shortest value: the header alone.
const minValueSize = headerLen

// valueBytes is the value op id writes to key index key: the header, then
// size-headerLen bytes of a stream seeded by both, so any damaged byte
// differs from the expected value. Most values are not valid UTF-8, which
// also exercises the base64 paths of the JSON API.
func valueBytes(id uint64, key, size int) []byte {
	if size < minValueSize {
		size = minValueSize
	}
	v := make([]byte, size)
	binary.BigEndian.PutUint64(v[0:8], id)
	binary.BigEndian.PutUint32(v[8:12], uint32(key))
	x := id*0x9E3779B97F4A7C15 ^ uint64(key)<<32 ^ uint64(size)
	for i := headerLen; i < size; i += 8 {
		// splitmix64: cheap, deterministic, and every byte depends on the seed.
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		z ^= z >> 31
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], z)
		copy(v[i:], b[:])
	}
	return v
}

// expectedBytes is the value a key in state s must hold (nil when absent).
func expectedBytes(s state, key int) []byte {
	if !s.present {
		return nil
	}
	return valueBytes(s.id, key, s.size)
}

// describe says what an observed value is, for a violation report: the
// operation and key its header names, and whether the rest is intact.
func describe(v []byte, present bool) string {
	if !present {
		return "absent"
	}
	if len(v) < headerLen {
		return fmt.Sprintf("unrecognised %d-byte value %q", len(v), v)
	}
	id := binary.BigEndian.Uint64(v[0:8])
	key := int(binary.BigEndian.Uint32(v[8:12]))
	s := fmt.Sprintf("%d bytes headed op %d, key %s", len(v), id, keyName(key))
	if bytes.Equal(v, valueBytes(id, key, len(v))) {
		return s + " (intact)"
	}
	return s + " (damaged: the bytes after the header differ)"
}

// observed is one key as read back from the server.
type observed struct {
	present bool
	value   []byte
}

func (o observed) matches(s state, key int) bool {
	if o.present != s.present {
		return false
	}
	return !s.present || bytes.Equal(o.value, expectedBytes(s, key))
}

// Violation is one broken promise found after a restart.
type Violation struct {
	Cycle    int
	Key      string
	What     string // e.g. "acknowledged write lost", "torn batch"
	Expected string
	Found    string
}

func (v Violation) String() string {
	return fmt.Sprintf("cycle %d: %s: key %s: expected %s, found %s", v.Cycle, v.What, v.Key, v.Expected, v.Found)
}

// model is what the key space must hold: every acknowledged write applied
// in order, and each in-flight operation resolved once it was observed.
type model struct {
	keys []state
}

func newModel(keys int) *model { return &model{keys: make([]state, keys)} }

// live counts the keys that must be present.
func (m *model) live() int {
	n := 0
	for _, s := range m.keys {
		if s.present {
			n++
		}
	}
	return n
}

// apply records an acknowledged operation.
func (m *model) apply(o *op) {
	for _, w := range o.writes {
		m.keys[w.key] = o.after(w)
	}
}

// resolution is what became of an operation that was in flight at the
// kill: applied, not applied, or unobservable (it changed nothing, such as
// a delete of an absent key).
type resolution int

const (
	resolvedNotApplied resolution = iota
	resolvedApplied
	resolvedUnobservable
)

// checkResult is the outcome of one verification.
type checkResult struct {
	violations   []Violation
	keysVerified int
	resolved     [3]int // by resolution
}

// check compares what the server holds (got, keyed by key name: every key
// under keyPrefix) with the model, and resolves the operations that were
// in flight at the kill. Each key is written by one writer at a time and
// a writer has at most one operation in flight, so an in-flight operation
// leaves each of its keys either as before it or as after it, and an
// atomic batch must be on the same side on every key it changes. Resolved
// operations are applied to the model, so later cycles expect them.
func (m *model) check(cycle int, got map[string]observed, inflight []*op) checkResult {
	var res checkResult
	fail := func(key, what, expected, found string) {
		res.violations = append(res.violations, Violation{Cycle: cycle, Key: key, What: what, Expected: expected, Found: found})
	}
	obs := make([]observed, len(m.keys))
	reported := make(map[int]bool)
	var unknown []string
	for k, o := range got {
		i, ok := keyIndex(k, len(m.keys))
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		obs[i] = o
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		fail(k, "key the harness never wrote", "absent", describe(got[k].value, true))
	}

	for _, o := range inflight {
		type side struct {
			key          int
			before, post state
			applied      bool
		}
		var sides []side
		ok := true
		for _, w := range o.writes {
			reported[w.key] = true // until the operation is resolved
			before, post := m.keys[w.key], o.after(w)
			o2 := obs[w.key]
			isBefore, isAfter := o2.matches(before, w.key), o2.matches(post, w.key)
			switch {
			case !isBefore && !isAfter:
				ok = false
				fail(keyName(w.key), fmt.Sprintf("key of an in-flight %s (op %d) is neither as before it nor as after it", o.kind, o.id),
					fmt.Sprintf("%v (before) or %v (after)", before, post), describe(o2.value, o2.present))
			case before != post:
				sides = append(sides, side{key: w.key, before: before, post: post, applied: isAfter})
			}
		}
		if !ok {
			continue
		}
		torn := false
		for _, s := range sides[min(1, len(sides)):] {
			torn = torn || s.applied != sides[0].applied
		}
		if torn {
			for _, s := range sides {
				exp := fmt.Sprintf("%v (not applied) on every key, or %v (applied) on every key", s.before, s.post)
				if s.applied {
					fail(keyName(s.key), fmt.Sprintf("torn %s (op %d): applied here", o.kind, o.id), exp, s.post.String())
				} else {
					fail(keyName(s.key), fmt.Sprintf("torn %s (op %d): not applied here", o.kind, o.id), exp, s.before.String())
				}
			}
			continue
		}
		switch {
		case len(sides) == 0:
			res.resolved[resolvedUnobservable]++
		case sides[0].applied:
			res.resolved[resolvedApplied]++
			m.apply(o)
		default:
			res.resolved[resolvedNotApplied]++
		}
		for _, w := range o.writes {
			delete(reported, w.key)
		}
	}

	for i, s := range m.keys {
		if reported[i] {
			continue // already reported with its in-flight operation
		}
		res.keysVerified++
		if obs[i].matches(s, i) {
			continue
		}
		what := "wrong value"
		switch {
		case s.present && !obs[i].present:
			what = "acknowledged write lost"
		case !s.present:
			what = "present, but deleted or never written"
		}
		fail(keyName(i), what, s.String(), describe(obs[i].value, obs[i].present))
	}
	return res
}

// keyIndex is the index of a key of the key space.
func keyIndex(k string, n int) (int, bool) {
	rest, ok := strings.CutPrefix(k, keyPrefix)
	if !ok || len(rest) != 5 {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= n || keyName(i) != k {
		return 0, false
	}
	return i, true
}
