// Package kv holds MantisDB's protocol-neutral operations over one
// storage.StorageEngine: what a write with options means (SET NX/XX/GET,
// TTL rules), read-modify-write commands (INCR, APPEND), compare-and-swap,
// atomic batches, paged scans and cursors, WATCH/EXEC.
//
// Protocols are thin skins over this package: an HTTP handler or a RESP
// command parses its request, calls a Store method and encodes the answer.
// Semantics live here once, so a key written through one protocol reads the
// same through the other, and swapping the local engine for a replicated one
// changes no handler.
package kv

import (
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Store runs operations on one engine. It is safe for concurrent use.
type Store struct {
	engine storage.StorageEngine
	now    func() time.Time
	// locks, watches and cursors serve the read-modify-write operations,
	// WATCH and SCAN (update.go, watch.go, cursor.go).
	locks   *keyLocks
	watches *watchRegistry
	cursors *cursorTable
	// appender is the engine's ValueAppender, if it is one; transient
	// records whether it implements storage.TransientArgs.
	appender  storage.ValueAppender
	values    storage.ValuesAppender
	transient bool
	// awaiter is the engine's CommitAwaiter when its writes can defer
	// their acknowledgement (deferral.go).
	awaiter storage.CommitAwaiter
}

// New returns a Store over engine, reading the wall clock for TTL rules.
func New(engine storage.StorageEngine) *Store {
	s := &Store{
		engine:  engine,
		now:     time.Now,
		locks:   newKeyLocks(),
		watches: newWatchRegistry(),
		cursors: newCursorTable(defaultCursorLimit, defaultCursorIdle),
	}
	s.appender, _ = engine.(storage.ValueAppender)
	s.values, _ = engine.(storage.ValuesAppender)
	if t, ok := engine.(storage.TransientArgs); ok {
		s.transient = t.TransientArgs()
	}
	if a, ok := engine.(storage.CommitAwaiter); ok && a.DefersCommits() {
		s.awaiter = a
	}
	return s
}

// Engine is the engine the Store runs on.
func (s *Store) Engine() storage.StorageEngine { return s.engine }
