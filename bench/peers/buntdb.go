package main

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/tidwall/buntdb"
)

// buntdbEngine is BuntDB with its defaults (every key and value in memory,
// an append-only file on disk, automatic shrinking of that file) and the
// sync policy chosen by the durability setting.
var buntdbEngine = Engine{
	Name:    "buntdb",
	Durable: true,
	Module:  "github.com/tidwall/buntdb",
	Open: func(dir string, sync bool) (Store, error) {
		db, err := buntdb.Open(filepath.Join(dir, "bunt.db"))
		if err != nil {
			return nil, err
		}
		var cfg buntdb.Config
		if err := db.ReadConfig(&cfg); err != nil {
			db.Close()
			return nil, err
		}
		cfg.SyncPolicy = buntdb.Never
		if sync {
			cfg.SyncPolicy = buntdb.Always
		}
		if err := db.SetConfig(cfg); err != nil {
			db.Close()
			return nil, err
		}
		return &buntdbStore{db: db}, nil
	},
	Setting: func(sync bool) string {
		if sync {
			return "`SyncPolicy=buntdb.Always` (fsync at every commit, under the database's write lock: writers do not share a sync)"
		}
		return "`SyncPolicy=buntdb.Never` (no fsync; the append-only file is written at every commit)"
	},
}

// buntdbStore: BuntDB keys and values are Go strings, so a write copies the
// bytes into strings it keeps, as any user of it must.
type buntdbStore struct {
	db *buntdb.DB
}

func (s *buntdbStore) Put(key, value []byte) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(string(key), string(value), nil)
		return err
	})
}

func (s *buntdbStore) Get(key []byte) ([]byte, error) {
	var out string
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		out, err = tx.Get(str(key))
		return err
	})
	if errors.Is(err, buntdb.ErrNotFound) {
		return nil, ErrNotFound
	}
	return bytesOf(out), err
}

func (s *buntdbStore) Batch(kvs []KV) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		for _, kv := range kvs {
			if _, _, err := tx.Set(string(kv.Key), string(kv.Value), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *buntdbStore) Scan(prefix []byte, n int, visit func(key, value []byte)) (int, error) {
	c := 0
	p := str(prefix)
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", p, func(k, v string) bool {
			if c >= n || !strings.HasPrefix(k, p) {
				return false
			}
			visit(bytesOf(k), bytesOf(v))
			c++
			return true
		})
	})
	return c, err
}

func (s *buntdbStore) Close() error { return s.db.Close() }
