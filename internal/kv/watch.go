package kv

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/mantisdb/mantisdb/storage"
)

// ErrWatchedKeyChanged is returned by Exec when a watched key was written,
// deleted or expired after WATCH: the transaction did not run (EXEC's nil).
var ErrWatchedKeyChanged = errors.New("a watched key changed")

// watchRegistry counts, for each key some connection watches, the writes
// this process committed to it. It sees what versions cannot: a key absent
// at WATCH that was created and deleted again before EXEC. Writes that do
// not pass through a Store (another protocol on the bare engine) are still
// caught by the key's version, except that create-and-delete case.
type watchRegistry struct {
	// active is the number of watched keys, read without the lock so that
	// writes skip the registry when nobody watches.
	active atomic.Int64
	mu     sync.Mutex
	keys   map[string]*watchedKey
}

type watchedKey struct {
	refs   int
	writes uint64
}

func newWatchRegistry() *watchRegistry {
	return &watchRegistry{keys: make(map[string]*watchedKey)}
}

// touch counts a committed write of every key in written.
func (r *watchRegistry) touch(written map[string]bool) {
	if len(written) == 0 || r.active.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range written {
		if w, ok := r.keys[k]; ok {
			w.writes++
		}
	}
}

// touchOps counts a committed write of every key in ops (a blind write's:
// puts and deletes alike, as touch does for a transaction's keys).
func (r *watchRegistry) touchOps(ops []storage.BatchOp) {
	if len(ops) == 0 || r.active.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range ops {
		if w, ok := r.keys[o.Key]; ok {
			w.writes++
		}
	}
}

// TouchKeys tells watchers that keys were written outside Update (a caller
// writing the engine directly), so their EXEC fails as Redis's would.
func (s *Store) TouchKeys(keys ...string) {
	if len(keys) == 0 || s.watches.active.Load() == 0 {
		return
	}
	written := make(map[string]bool, len(keys))
	for _, k := range keys {
		written[k] = true
	}
	s.watches.touch(written)
}

// touchPuts tells watchers about the puts among ops. Deletes need no
// touch: a watched key that existed is caught by its absence, and one that
// did not exist was not changed by a delete.
func (s *Store) touchPuts(ops []storage.BatchOp) {
	var puts []string
	for _, o := range ops {
		if o.Kind == storage.OpPut {
			puts = append(puts, o.Key)
		}
	}
	s.TouchKeys(puts...)
}

// watchState is what WATCH saw of one key.
type watchState struct {
	present bool
	version uint64
	writes  uint64
}

// Watch is one connection's set of watched keys (Redis WATCH). It is used
// by one goroutine at a time; Unwatch releases it.
type Watch struct {
	s    *Store
	keys map[string]watchState
}

// NewWatch returns an empty watch set over s.
func (s *Store) NewWatch() *Watch { return &Watch{s: s} }

// Len is the number of keys watched.
func (w *Watch) Len() int { return len(w.keys) }

// Add watches keys: the next Exec fails if any of them is written,
// deleted or expires before it commits. Watching a key twice keeps the
// first sighting.
func (w *Watch) Add(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if _, ok := w.keys[k]; ok {
			continue
		}
		// Register before reading, so a write between the two is counted.
		writes := w.s.watches.add(k)
		st := watchState{writes: writes}
		_, m, err := w.s.engine.GetWithMeta(ctx, k)
		switch {
		case err == nil:
			st.present, st.version = true, m.Version
		case errors.Is(err, storage.ErrNotFound):
		default:
			w.s.watches.release(k)
			return err
		}
		if w.keys == nil {
			w.keys = make(map[string]watchState)
		}
		w.keys[k] = st
	}
	return nil
}

// Unwatch forgets every watched key.
func (w *Watch) Unwatch() {
	for k := range w.keys {
		w.s.watches.release(k)
	}
	w.keys = nil
}

func (r *watchRegistry) add(key string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.keys[key]
	if !ok {
		w = &watchedKey{}
		r.keys[key] = w
		r.active.Add(1)
	}
	w.refs++
	return w.writes
}

func (r *watchRegistry) writes(key string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.keys[key]; ok {
		return w.writes
	}
	return 0
}

func (r *watchRegistry) release(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.keys[key]
	if !ok {
		return
	}
	if w.refs--; w.refs == 0 {
		delete(r.keys, key)
		r.active.Add(-1)
	}
}

// unchanged reports whether every watched key is as WATCH saw it, reading
// each through tx so that a write racing the commit fails it (and Update
// retries the check on fresh reads).
func (w *Watch) unchanged(tx *Tx) (bool, error) {
	for k, st := range w.keys {
		_, m, present, err := tx.read(k)
		if err != nil {
			return false, err
		}
		if present != st.present || (present && m.Version != st.version) {
			return false, nil
		}
		if w.s.watches.writes(k) != st.writes {
			return false, nil
		}
	}
	return true, nil
}

// Exec runs fn as one transaction (Redis EXEC) after checking the watched
// keys, and unwatches them whatever happens. keys are the keys fn writes.
// It returns ErrWatchedKeyChanged without running fn when a watched key
// changed; a conflict with any other write is retried. w may be nil.
func (s *Store) Exec(ctx context.Context, w *Watch, keys []string, fn func(tx *Tx) error) error {
	if w != nil {
		defer w.Unwatch()
	}
	return s.Update(ctx, keys, func(tx *Tx) error {
		if w != nil && len(w.keys) > 0 {
			ok, err := w.unchanged(tx)
			if err != nil {
				return err
			}
			if !ok {
				return ErrWatchedKeyChanged
			}
		}
		return fn(tx)
	})
}
