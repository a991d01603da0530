package main

import (
	"bytes"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucket = []byte("kv")

// bboltEngine is bbolt with its defaults (one bucket, fill percent 0.5)
// and NoSync chosen by the durability setting. Every Put is its own
// read-write transaction (db.Update): bbolt runs one writer at a time, so
// concurrent writers queue for the lock and each commit pays its own sync.
var bboltEngine = Engine{
	Name:    "bbolt",
	Durable: true,
	Module:  "go.etcd.io/bbolt",
	Open: func(dir string, sync bool) (Store, error) {
		db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: !sync})
		if err != nil {
			return nil, err
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucket)
			return err
		}); err != nil {
			db.Close()
			return nil, err
		}
		return &bboltStore{db: db}, nil
	},
	Setting: func(sync bool) string {
		if sync {
			return "`NoSync=false`, the default (fdatasync at every commit; one writer at a time, so concurrent writers queue and do not share a sync)"
		}
		return "`NoSync=true` (no fsync; pages still written at every commit)"
	},
}

type bboltStore struct {
	db *bolt.DB
}

func (s *bboltStore) Put(key, value []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, value) })
}

func (s *bboltStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(key)
		if v == nil {
			return ErrNotFound
		}
		// v points into the memory map, valid only inside the transaction.
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

func (s *bboltStore) Batch(kvs []KV) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, kv := range kvs {
			if err := b.Put(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *bboltStore) Scan(prefix []byte, n int, visit func(key, value []byte)) (int, error) {
	c := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucket).Cursor()
		for k, v := cur.Seek(prefix); k != nil && c < n && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			visit(k, v)
			c++
		}
		return nil
	})
	return c, err
}

func (s *bboltStore) Close() error { return s.db.Close() }
