package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Sessions make a write safe to send again. Every proposal carries a
// session id and a sequence number; a node holds a session for one write
// at a time (sessionPool), so the numbers of a session reach Apply in
// order. Apply keeps, per session, the last sequence number it applied
// and that entry's answer, in a record under sessionPrefix written in the
// same engine commit as the entry. An entry whose number equals the
// recorded one is a copy of a write already applied (its first answer was
// lost and the node sent it again, or an old leader's copy committed
// beside the retry): it changes nothing and answers the recorded answer.
// A lower number is a copy of a write its node has given up on: it changes
// nothing either. The records are replicated state like the user's keys:
// in every replica's engine, in snapshots, and the same after a restart.
//
// So a node retries a write whose answer it lost, until the request's time
// runs out, instead of answering ErrUnknownOutcome at once: the retry
// either applies the write or finds it applied.
//
// A session record expires sessionTTL after its last write (by the
// leader's clock in the entries), far beyond how long a node retries.

// Reserved key prefixes of the records kept for sessions and deletes.
const (
	sessionPrefix   = reservedPrefix + "s/"
	tombstonePrefix = reservedPrefix + "t/"
	// tombstoneHashed holds tombstones of keys too long to append to the
	// prefix: the key's SHA-256 stands for it (a collision can only make
	// a transaction conflict).
	tombstoneHashed = reservedPrefix + "th/"
	tombstoneMaxKey = 1024
)

const (
	sessionTTL = 10 * time.Minute
	// tombstoneTTL is how long a delete is remembered; txnMaxAge, the
	// oldest snapshot a transaction that read a key absent may commit
	// from, leaves the clock slack replicas are allowed between them.
	tombstoneTTL = 2 * time.Minute
	txnMaxAge    = tombstoneTTL - expirySlack
)

// Extension tags of the command format (command.go).
const (
	extSession   = 1
	extReadPoint = 2
)

func (c command) appendExtensions(b []byte) []byte {
	if c.session != "" {
		b = append(b, extSession)
		b = appendString(b, c.session)
		b = binary.AppendUvarint(b, c.seq)
	}
	if c.readMs != 0 {
		b = append(b, extReadPoint)
		b = binary.AppendUvarint(b, c.readIndex)
		b = binary.AppendVarint(b, c.readMs)
	}
	return b
}

// extensions reads what follows the ops.
func (d *decoder) extensions(c *command) {
	for d.err == nil && len(d.b) > 0 {
		switch tag := d.byte(); tag {
		case extSession:
			c.session, c.seq = d.string(), d.uvarint()
			if d.err == nil && (c.session == "" || c.seq == 0) {
				d.fail(errors.New("empty session"))
			}
		case extReadPoint:
			c.readIndex, c.readMs = d.uvarint(), d.varint()
			if d.err == nil && c.readMs == 0 {
				d.fail(errors.New("read point without a clock"))
			}
		default:
			d.fail(fmt.Errorf("unknown extension %d after the ops", tag))
		}
	}
}

// sessionPool hands each write of a node a session of its own. A session
// goes back to the pool when its write has an answer or was given up, so
// there are as many sessions as writes this node ran at once.
type sessionPool struct {
	mu     sync.Mutex
	prefix string
	free   []*session
	made   int
}

type session struct {
	id  string
	seq uint64
}

func (p *sessionPool) take(nodeID string) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	if p.prefix == "" {
		// A node's sessions are new on every start: the records of the
		// previous run's expire.
		var b [8]byte
		_, _ = rand.Read(b[:])
		p.prefix = nodeID + "." + hex.EncodeToString(b[:]) + "."
	}
	p.made++
	return &session{id: p.prefix + strconv.Itoa(p.made)}
}

func (p *sessionPool) give(s *session) {
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

// proposeOnce replicates a proposal through the leader under a session of
// this node, sending it again while its answer is lost, until ctx ends.
func (e *Engine) proposeOnce(ctx context.Context, c command) error {
	s := e.sessions.take(e.cfg.NodeID)
	defer e.sessions.give(s)
	s.seq++
	c.session, c.seq = s.id, s.seq
	var lost error
	backoff := 10 * time.Millisecond
	for {
		err := e.proposeVia(ctx, c)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrUnknownOutcome):
		case lost != nil && !errors.Is(err, storage.ErrConflict):
			// An earlier attempt may have been applied, and this one did
			// not reach Apply (no leader, the node closing): only Apply's
			// answers (success, a conflict) settle the outcome.
			return fmt.Errorf("%w: %v (then: %v)", ErrUnknownOutcome, lost, err)
		default:
			return err
		}
		lost = err
		e.resends.Add(1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// applySession applies entry c at index unless its session shows it
// applied already, and records its answer in the session.
func (b *batchState) applySession(c command, index uint64) (any, error) {
	if c.session == "" {
		return b.apply(c, index)
	}
	key := sessionPrefix + c.session
	r, ok, err := b.sessionRecord(key)
	if err != nil {
		return nil, err
	}
	if ok && r.liveAt(c.clockMs) {
		last, code, msg, err := decodeSession(key, r.value)
		if err != nil {
			return nil, err
		}
		switch {
		case c.seq == last:
			b.duplicates++
			if code == codeOK {
				return nil, nil
			}
			return codeError(code, msg), nil
		case c.seq < last:
			b.duplicates++
			return fmt.Errorf("%w: a later write of session %s was applied (%d after %d)", ErrUnknownOutcome, c.session, last, c.seq), nil
		}
	}
	answer, err := b.apply(c, index)
	if err != nil {
		return nil, err
	}
	code, msg := byte(codeOK), ""
	if e, isErr := answer.(error); isErr && e != nil {
		code, msg = errorCode(e), e.Error()
	}
	b.putReserved(key, record{version: index, expiryMs: c.clockMs + sessionTTL.Milliseconds(), value: encodeSession(c.seq, code, msg)})
	b.sessions = append(b.sessions, key)
	return answer, nil
}

// sessionRecord is reservedRecord for a session's record, taken from the
// fsm's cache when this node's Apply wrote it since the engine was last
// replaced: the record the engine holds, without reading it. (The engine
// drops a record a minute after its expiry by this node's clock; Apply
// judges a record by the entry's clock, so the two answers differ only for
// an entry whose clock lags this node's by more than that minute, and the
// cache then answers as the leader did.)
func (b *batchState) sessionRecord(key string) (record, bool, error) {
	if _, ok := b.overlay[key]; !ok {
		if r, ok := b.f.sessions[key]; ok {
			return r, true, nil
		}
	}
	return b.reservedRecord(key)
}

func encodeSession(seq uint64, code byte, msg string) string {
	var buf [binary.MaxVarintLen64 + 1 + 64]byte
	b := binary.AppendUvarint(buf[:0], seq)
	b = append(b, code)
	return string(append(b, msg...))
}

func decodeSession(key, v string) (seq uint64, code byte, msg string, err error) {
	seq, n := binary.Uvarint([]byte(v))
	if n <= 0 || n >= len(v) {
		return 0, 0, "", fmt.Errorf("%w: the session record %q is malformed", storage.ErrCorruption, shortKey(key))
	}
	return seq, v[n], v[n+1:], nil
}

// tombstoneKey is where a delete of key is remembered.
func tombstoneKey(key string) string {
	if len(key) > tombstoneMaxKey {
		sum := sha256.Sum256([]byte(key))
		return tombstoneHashed + string(sum[:])
	}
	return tombstonePrefix + key
}

// tombstone records that the entry at index, at the leader's clock
// clockMs, removed key.
func (b *batchState) tombstone(key string, index uint64, clockMs int64) {
	b.putReserved(tombstoneKey(key), record{version: index, expiryMs: clockMs + tombstoneTTL.Milliseconds()})
}

// writtenSince is, for a key absent both when transaction c read it and
// now, the index of a write of key after c's snapshot (a create followed
// by a delete, or a write that has expired since), or 0 if there was
// none. A transaction older than txnMaxAge cannot be judged (the deletes
// it would have to see may be forgotten) and is answered as changed.
func (b *batchState) writtenSince(c command, key string) (uint64, error) {
	if c.readMs == 0 {
		return 0, nil
	}
	if c.clockMs-c.readMs > txnMaxAge.Milliseconds() {
		return ^uint64(0), nil
	}
	r, ok, err := b.reservedRecord(key)
	if err != nil {
		return 0, err
	}
	if ok && r.version > c.readIndex {
		return r.version, nil
	}
	t, ok, err := b.reservedRecord(tombstoneKey(key))
	if err != nil {
		return 0, err
	}
	if ok && t.liveAt(c.clockMs) && t.version > c.readIndex {
		return t.version, nil
	}
	return 0, nil
}

// reservedRecord reads key's record as this batch left it, expired or
// not; ok is false when there is none.
func (b *batchState) reservedRecord(key string) (record, bool, error) {
	if o, ok := b.overlay[key]; ok {
		if o.deleted {
			return record{}, false, nil
		}
		return o.r, true, nil
	}
	b.f.mu.RLock()
	raw, err := b.f.local.Get(context.Background(), key)
	b.f.mu.RUnlock()
	if errors.Is(err, storage.ErrNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	r, err := decodeRecord(key, raw)
	if err != nil {
		return record{}, false, err
	}
	return r, true, nil
}

// putReserved adds a record of the cluster's own to the batch.
func (b *batchState) putReserved(key string, r record) {
	ttl, keep := engineTTL(r.expiryMs, b.nowMs)
	if !keep {
		// Applied long after the leader's clock (a node catching up on old
		// entries): kept a while, so that the entries after it, applied in
		// the same catch-up, are judged as the leader judged them.
		ttl = expirySlack
	}
	b.ops = append(b.ops, storage.BatchOp{Kind: storage.OpPut, Key: key, Value: encodeRecord(r.version, r.expiryMs, r.value), TTL: ttl})
	b.overlay[key] = overlayRecord{r: r}
}

// readPoint marks proposal c, about to be committed by t, with the applied
// index and clock of t's snapshot when one of its conditions is a key's
// absence, so that Apply can tell whether the key was written since.
func (t *txn) readPoint(c *command) error {
	for _, k := range c.conds {
		if k.version != 0 {
			continue
		}
		raw, err := t.snap.Get(appliedKey)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		case len(raw) != 8:
			return fmt.Errorf("%w: the applied index record has %d bytes, want 8", storage.ErrCorruption, len(raw))
		default:
			c.readIndex = binary.BigEndian.Uint64([]byte(raw))
		}
		c.readMs = max(t.nowMs, 1)
		return nil
	}
	return nil
}

// reservedKeys counts the cluster's own keys in a local engine, so that
// Stats shows only the user's.
func reservedKeys(ctx context.Context, local storage.StorageEngine) (uint64, error) {
	it, err := local.NewIterator(ctx, reservedPrefix)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var n uint64
	for it.Next() {
		n++
	}
	return n, it.Error()
}

// dropAnswerHook, set only by tests, makes a node close a cluster RPC
// connection instead of answering a request it has carried out, as a
// connection cut at that moment would.
var dropAnswerHook atomic.Pointer[func(method byte) bool]

// SessionFigures are the counters of retried writes: writes this node sent
// again after their answer was lost, and entries this node's Apply found
// applied already.
func (e *Engine) SessionFigures() (resent, duplicates uint64) {
	return e.resends.Load(), e.fsm.duplicates.Load()
}
