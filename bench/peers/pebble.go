package main

import (
	"errors"
	"log"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleEngine is Pebble v2 with its defaults, the block cache set to the
// common budget and informational logging off.
var pebbleEngine = Engine{
	Name:    "pebble",
	Durable: true,
	Module:  "github.com/cockroachdb/pebble/v2",
	Open: func(dir string, sync bool) (Store, error) {
		cache := pebble.NewCache(cacheBytes)
		// Open takes its own reference to the cache.
		defer cache.Unref()
		db, err := pebble.Open(dir, &pebble.Options{Cache: cache, Logger: quietLogger{}})
		if err != nil {
			return nil, err
		}
		wo := pebble.NoSync
		if sync {
			wo = pebble.Sync
		}
		return &pebbleStore{db: db, wo: wo}, nil
	},
	Setting: func(sync bool) string {
		if sync {
			return "every write with `pebble.Sync` (the WAL is fsynced before the write returns; concurrent commits share a sync)"
		}
		return "every write with `pebble.NoSync` (WAL written, not fsynced)"
	},
}

// quietLogger drops Pebble's informational lines, keeps its errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(format string, a ...any) { log.Printf("pebble: "+format, a...) }
func (quietLogger) Fatalf(format string, a ...any) { log.Fatalf("pebble: "+format, a...) }

type pebbleStore struct {
	db *pebble.DB
	wo *pebble.WriteOptions
}

func (s *pebbleStore) Put(key, value []byte) error { return s.db.Set(key, value, s.wo) }

func (s *pebbleStore) Get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

func (s *pebbleStore) Batch(kvs []KV) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, kv := range kvs {
		if err := b.Set(kv.Key, kv.Value, nil); err != nil {
			return err
		}
	}
	return b.Commit(s.wo)
}

func (s *pebbleStore) Scan(prefix []byte, n int, visit func(key, value []byte)) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	c := 0
	for valid := it.First(); valid && c < n; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return c, err
		}
		visit(it.Key(), v)
		c++
	}
	return c, it.Close()
}

func (s *pebbleStore) Close() error { return s.db.Close() }

// prefixEnd is the smallest key greater than every key starting with
// prefix, or nil (no bound) when prefix is all 0xff.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
