package main

import (
	"context"
	"errors"
	"unsafe"

	"github.com/mantisdb/mantisdb/storage"
)

// mantisGetStackBuf mirrors getStackBuf in storage/rust.go: the largest
// value RustEngine.Get reads in one call.
const mantisGetStackBuf = 512

// rustName is the column of the engine every ratio is taken against.
const rustName = "mantisdb"

// rustEngine is MantisDB's durable engine (rust-core over cgo). Its Open is
// nil in builds without the rust tag (storage.RustAvailable is false), and
// engines() then leaves it out.
var rustEngine = func() Engine {
	if !storage.RustAvailable {
		return Engine{Name: rustName}
	}
	return Engine{
		Name:    rustName,
		Durable: true,
		Module:  "github.com/mantisdb/mantisdb",
		Open: func(dir string, sync bool) (Store, error) {
			return openMantis("rust", dir, sync)
		},
		Setting: func(sync bool) string {
			if sync {
				return "`Sync: storage.SyncAlways` (fdatasync before acknowledging; concurrent commits share one sync), 64 MiB value cache"
			}
			return "`Sync: storage.SyncNever` (no fsync), 64 MiB value cache"
		},
	}
}()

// memoryEngine is MantisDB's pure-Go in-memory engine: not durable, shown
// as a reference for what the cgo crossing and the disk cost.
var memoryEngine = Engine{
	Name:    "memory",
	Durable: false,
	Module:  "github.com/mantisdb/mantisdb",
	Open: func(dir string, sync bool) (Store, error) {
		return openMantis("memory", dir, sync)
	},
	Setting: func(bool) string {
		return "not durable at either setting (a B-tree in the Go heap); a reference, not a peer"
	},
}

func openMantis(name, dir string, sync bool) (Store, error) {
	cfg := storage.DefaultConfig()
	cfg.DataDir = dir
	cfg.CacheSize = cacheBytes
	cfg.Sync = storage.SyncNever
	if sync {
		cfg.Sync = storage.SyncAlways
	}
	e, err := storage.NewStorageEngine(name, cfg)
	if err != nil {
		return nil, err
	}
	if err := e.Init(dir); err != nil {
		return nil, err
	}
	return &mantisStore{e: e}, nil
}

// mantisStore drives a storage.StorageEngine. The engine's API takes and
// returns strings; the adapter passes views of the caller's bytes (the
// engine copies what it keeps) and returns a view of the freshly allocated
// result, so no copy is added that a user of the API would not pay.
type mantisStore struct {
	e storage.StorageEngine
}

var bg = context.Background()

// str is a string view of b, which the caller never modifies.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// bytesOf is a read-only byte view of s.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (m *mantisStore) Put(key, value []byte) error {
	return m.e.Put(bg, str(key), str(value))
}

func (m *mantisStore) Get(key []byte) ([]byte, error) {
	v, err := m.e.Get(bg, str(key))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	return bytesOf(v), err
}

func (m *mantisStore) Batch(kvs []KV) error {
	ops := make([]storage.BatchOp, len(kvs))
	for i, kv := range kvs {
		ops[i] = storage.BatchOp{Kind: storage.OpPut, Key: str(kv.Key), Value: str(kv.Value)}
	}
	return m.e.Write(bg, ops)
}

func (m *mantisStore) Scan(prefix []byte, n int, visit func(key, value []byte)) (int, error) {
	it, err := m.e.NewIterator(bg, str(prefix))
	if err != nil {
		return 0, err
	}
	defer it.Close()
	// The scan reads at most n pairs: fetched in as few batches as that takes.
	storage.LimitReads(it, n)
	c := 0
	for c < n && it.Next() {
		visit(bytesOf(it.Key()), bytesOf(it.Value()))
		c++
	}
	return c, it.Error()
}

func (m *mantisStore) Close() error { return m.e.Close() }
