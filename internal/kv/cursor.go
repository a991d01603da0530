package kv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// SCAN cursors. A client holds a decimal 64-bit number; the server maps it
// to the last key the previous call returned, and the next call resumes
// after that key in key order. So a key present for the whole scan is
// returned exactly once (keys are walked in order, never rehashed), and a
// key added or removed meanwhile may or may not be.
//
// The table is bounded: at most defaultCursorLimit cursors, each forgotten
// defaultCursorIdle after its last use (the oldest is dropped when the table
// is full). A forgotten or made-up cursor is ErrUnknownCursor, never a
// silent restart from the first key. Cursor numbers are random below 2^63,
// so clients that parse them as signed integers work, and one client cannot
// guess another's.
const (
	defaultCursorLimit = 100_000
	defaultCursorIdle  = 10 * time.Minute
	// maxScanCount bounds the keys one SCAN call walks, whatever COUNT says.
	maxScanCount = 100_000
)

// ErrUnknownCursor is the answer to a cursor the server does not hold.
var ErrUnknownCursor = errors.New("invalid cursor")

type cursorEntry struct {
	after    string
	lastUsed time.Time
}

// cursorTable maps cursor numbers to scan positions.
type cursorTable struct {
	limit int
	idle  time.Duration
	mu    sync.Mutex
	m     map[uint64]cursorEntry
}

func newCursorTable(limit int, idle time.Duration) *cursorTable {
	return &cursorTable{limit: limit, idle: idle, m: make(map[uint64]cursorEntry)}
}

// lookup returns the position of cursor (0: the start).
func (c *cursorTable) lookup(cursor uint64, now time.Time) (string, bool) {
	if cursor == 0 {
		return "", true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[cursor]
	if !ok || now.Sub(e.lastUsed) > c.idle {
		delete(c.m, cursor)
		return "", false
	}
	e.lastUsed = now
	c.m[cursor] = e
	return e.after, true
}

// issue returns a new cursor resuming after key.
func (c *cursorTable) issue(after string, now time.Time) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.limit {
		c.evictLocked(now)
	}
	for {
		id := rand.Uint64() >> 1
		if _, taken := c.m[id]; id != 0 && !taken {
			c.m[id] = cursorEntry{after: after, lastUsed: now}
			return id
		}
	}
}

// evictLocked drops idle cursors, and the least recently used one if none is idle.
func (c *cursorTable) evictLocked(now time.Time) {
	var oldest uint64
	var oldestAt time.Time
	for id, e := range c.m {
		if now.Sub(e.lastUsed) > c.idle {
			delete(c.m, id)
			continue
		}
		if oldest == 0 || e.lastUsed.Before(oldestAt) {
			oldest, oldestAt = id, e.lastUsed
		}
	}
	if len(c.m) >= c.limit {
		delete(c.m, oldest)
	}
}

// ScanOptions are SCAN's MATCH, COUNT and TYPE.
type ScanOptions struct {
	Match string // glob; "" matches every key
	Count int    // keys to walk in this call (default 10)
	Type  string // "" or "string" keep keys; other types match nothing yet
}

// Scan walks up to opts.Count keys after cursor's position and returns the
// ones matching opts with the cursor to continue from (0 when the walk
// reached the last key). A cursor the server does not hold is
// ErrUnknownCursor.
func (t *Tx) Scan(ctx context.Context, cursor uint64, opts ScanOptions) (uint64, []string, error) {
	table := t.s.cursors
	after, ok := table.lookup(cursor, t.now)
	if !ok {
		return 0, nil, fmt.Errorf("%w: cursor %d is unknown or expired (cursors last %v after their last use); start again from 0",
			ErrUnknownCursor, cursor, table.idle)
	}
	count := opts.Count
	if count <= 0 {
		count = 10
	}
	count = min(count, maxScanCount)
	start := ""
	if cursor != 0 {
		start = after + "\x00" // the smallest key after `after`
	}
	typeOK := opts.Type == "" || opts.Type == "string"
	var keys []string
	walked, last, more := 0, "", false
	err := t.eachKey(ctx, start, func(k string) bool {
		if walked == count {
			more = true
			return false
		}
		walked++
		last = k
		if typeOK && (opts.Match == "" || MatchGlob(opts.Match, k)) {
			keys = append(keys, k)
		}
		return true
	})
	if err != nil {
		return 0, nil, err
	}
	if !more {
		return 0, keys, nil
	}
	return table.issue(last, t.now), keys, nil
}
