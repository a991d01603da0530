package main

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// badgerEngine is Badger v4 with its defaults (values up to 1 MiB live in
// the LSM tree, Snappy block compression, conflict detection on), the block
// cache set to the common budget and no logger.
var badgerEngine = Engine{
	Name:    "badger",
	Durable: true,
	Module:  "github.com/dgraph-io/badger/v4",
	Open: func(dir string, sync bool) (Store, error) {
		opts := badger.DefaultOptions(dir).
			WithSyncWrites(sync).
			WithBlockCacheSize(cacheBytes).
			WithLogger(nil)
		db, err := badger.Open(opts)
		if err != nil {
			return nil, err
		}
		return &badgerStore{db: db}, nil
	},
	Setting: func(sync bool) string {
		if sync {
			return "`SyncWrites=true` (each commit waits for the write-ahead log's fsync; commits from concurrent goroutines are written and synced together)"
		}
		return "`SyncWrites=false` (no fsync)"
	},
}

// badgerStore uses managed transactions (db.Update / db.View), the API the
// Badger README leads with; a batch is one Update.
type badgerStore struct {
	db *badger.DB
}

func (s *badgerStore) Put(key, value []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, value) })
}

func (s *badgerStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	return out, err
}

func (s *badgerStore) Batch(kvs []KV) error {
	return s.db.Update(func(txn *badger.Txn) error {
		for _, kv := range kvs {
			if err := txn.Set(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *badgerStore) Scan(prefix []byte, n int, visit func(key, value []byte)) (int, error) {
	c := 0
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); c < n && it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error {
				visit(item.Key(), v)
				return nil
			}); err != nil {
				return err
			}
			c++
		}
		return nil
	})
	return c, err
}

func (s *badgerStore) Close() error { return s.db.Close() }
