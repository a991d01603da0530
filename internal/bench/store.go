package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// maxTxnAttempts is how many times the Transactions test runs one
// increment before counting it as an error.
const maxTxnAttempts = 20

// kv is one key and value of a batch.
type kv struct{ key, value string }

// cacheCounters are an engine's cumulative cache figures; the suite reports
// the difference across a test.
type cacheCounters struct {
	hits, misses, capacity uint64
}

// store is what the suite drives: an engine in process (engineStore) or a
// server over HTTP (httpStore). Keys are the suite's; a store may add a
// namespace of its own.
type store interface {
	put(ctx context.Context, key, value string) error
	// get returns the value of key and whether it was found.
	get(ctx context.Context, key string) (string, bool, error)
	delete(ctx context.Context, key string) error
	// batchPut writes every pair atomically.
	batchPut(ctx context.Context, kvs []kv) error
	// scan returns how many keys starting with prefix it read, at most limit.
	scan(ctx context.Context, prefix string, limit int) (int, error)
	// increment adds one to the decimal counter in key in one transaction
	// (a read-modify-write), retrying on conflict; it returns the number of
	// conflicts it met.
	increment(ctx context.Context, key string, rng *rand.Rand) (int, error)
	cache(ctx context.Context) (cacheCounters, error)
}

// engineStore drives an engine in process.
type engineStore struct {
	engine storage.StorageEngine
}

func (s engineStore) put(ctx context.Context, key, value string) error {
	return s.engine.Put(ctx, key, value)
}

func (s engineStore) get(ctx context.Context, key string) (string, bool, error) {
	v, err := s.engine.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (s engineStore) delete(ctx context.Context, key string) error {
	return s.engine.Delete(ctx, key)
}

func (s engineStore) batchPut(ctx context.Context, kvs []kv) error {
	ops := make([]storage.BatchOp, len(kvs))
	for i, p := range kvs {
		ops[i] = storage.BatchOp{Kind: storage.OpPut, Key: p.key, Value: p.value}
	}
	return s.engine.Write(ctx, ops)
}

func (s engineStore) scan(ctx context.Context, prefix string, limit int) (int, error) {
	it, err := s.engine.NewIterator(ctx, prefix)
	if err != nil {
		return 0, err
	}
	storage.LimitReads(it, limit)
	n := 0
	for n < limit && it.Next() {
		n++
	}
	return n, errors.Join(it.Error(), it.Close())
}

func (s engineStore) increment(ctx context.Context, key string, rng *rand.Rand) (int, error) {
	conflicts := 0
	for attempt := 1; attempt <= maxTxnAttempts; attempt++ {
		err := s.incrementOnce(ctx, key)
		if !errors.Is(err, storage.ErrConflict) {
			return conflicts, err
		}
		conflicts++
		if err := backoff(ctx, attempt, rng); err != nil {
			return conflicts, err
		}
	}
	return conflicts, fmt.Errorf("increment of %q conflicted %d times in a row", key, maxTxnAttempts)
}

func (s engineStore) incrementOnce(ctx context.Context, key string) error {
	tx, err := s.engine.BeginTransaction(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("counter %q holds %q, not a number", key, v)
	}
	if err := tx.Put(key, strconv.FormatInt(n+1, 10)); err != nil {
		return err
	}
	return tx.Commit()
}

func (s engineStore) cache(ctx context.Context) (cacheCounters, error) {
	st, err := s.engine.Stats(ctx)
	return cacheCounters{hits: st.CacheHits, misses: st.CacheMisses, capacity: st.CacheCapacityBytes}, err
}

// backoff pauses a random time that grows with attempt, so competing
// transactions stop retrying in lock step.
func backoff(ctx context.Context, attempt int, rng *rand.Rand) error {
	t := time.NewTimer(backoffDelay(attempt, rng))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry pauses start at up to backoffBase and double with each attempt,
// up to backoffMax: the maxTxnAttempts tries of one increment spread over
// about a tenth of a second, longer than a synced commit takes on a loaded
// machine, so a burst of commits on one counter (or one slow sync) does
// not use them all up. A pause that stayed under attempt x 50 us spent
// every try within about 10 ms, and an increment failed after 20
// conflicts in a row at load average 8.
const (
	backoffBase = 50 * time.Microsecond
	backoffMax  = 10 * time.Millisecond
)

// backoffDelay is the pause before try attempt+1: uniform in [0, bound),
// bound = backoffBase << (attempt-1), at most backoffMax.
func backoffDelay(attempt int, rng *rand.Rand) time.Duration {
	bound := backoffMax
	if attempt >= 1 && attempt <= 16 && backoffBase<<(attempt-1) < backoffMax {
		bound = backoffBase << (attempt - 1)
	}
	return time.Duration(rng.Int64N(int64(bound)))
}

// openEngine creates and initialises the engine name in dir.
func openEngine(name string, cfg storage.Config, dir string) (storage.StorageEngine, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg.DataDir = dir
	engine, err := storage.NewStorageEngine(name, cfg)
	if err != nil {
		return nil, err
	}
	if err := engine.Init(dir); err != nil {
		return nil, fmt.Errorf("opening the %s engine in %s: %w", name, dir, err)
	}
	return engine, nil
}

// engineSubject is one engine under test in process: its main instance,
// and the means to open a second one with a small cache for Memory Pressure.
type engineSubject struct {
	name string
	cfg  storage.Config
	dir  string
	main storage.StorageEngine
}

func newEngineSubject(name string, cfg storage.Config, parent string) (*engineSubject, error) {
	dir := filepath.Join(parent, name)
	engine, err := openEngine(name, cfg, dir)
	if err != nil {
		return nil, err
	}
	return &engineSubject{name: name, cfg: cfg, dir: dir, main: engine}, nil
}

func (s *engineSubject) label() string { return s.name }
func (s *engineSubject) store() store  { return engineStore{s.main} }

// withCache opens a fresh engine whose cache holds cacheBytes; close
// removes it and its files.
func (s *engineSubject) withCache(cacheBytes int64) (store, func() error, error) {
	cfg := s.cfg
	cfg.CacheSize = cacheBytes
	dir := s.dir + "-pressure"
	engine, err := openEngine(s.name, cfg, dir)
	if err != nil {
		return nil, nil, err
	}
	return engineStore{engine}, func() error {
		return errors.Join(engine.Close(), os.RemoveAll(dir))
	}, nil
}

func (s *engineSubject) close(context.Context) error { return s.main.Close() }
