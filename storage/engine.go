// Package storage defines the StorageEngine interface of MantisDB and its
// engines: the pure-Go memory engine (the reference model, always built) and
// the Rust engine (build tag "rust", a cgo wrapper over rust-core).
package storage

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// DefaultMaxValueSize is the default longest value, in bytes (64 MiB).
const DefaultMaxValueSize = 64 << 20

// StorageEngine is a key-value store with ordered iteration, atomic
// batches, optimistic transactions and TTL. Implementations are safe for
// concurrent use. The first group of methods is the established interface;
// the second adds what the server needs.
type StorageEngine interface {
	// Init opens (creating if needed) the engine's data in dataDir. An empty
	// dataDir uses Config.DataDir.
	Init(dataDir string) error
	// Close syncs and releases everything; later calls return ErrClosed.
	Close() error
	// Put sets key to value.
	Put(ctx context.Context, key, value string) error
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) (string, error)
	// Delete removes key; deleting a missing key succeeds.
	Delete(ctx context.Context, key string) error
	// BatchPut sets every pair atomically: all or none are visible, also after a crash.
	BatchPut(ctx context.Context, kvs map[string]string) error
	// BatchGet returns the present keys among keys, read at one point in time.
	BatchGet(ctx context.Context, keys []string) (map[string]string, error)
	// BatchDelete removes every key atomically.
	BatchDelete(ctx context.Context, keys []string) error
	// NewIterator walks keys starting with prefix in byte order, at one point in time.
	NewIterator(ctx context.Context, prefix string) (Iterator, error)
	// BeginTransaction starts an optimistic, serializable transaction.
	BeginTransaction(ctx context.Context) (Transaction, error)
	// HealthCheck reports whether the engine can serve requests.
	HealthCheck(ctx context.Context) error

	// PutWithTTL sets key to value, invisible once ttl (at least 1 ms) has passed.
	PutWithTTL(ctx context.Context, key, value string, ttl time.Duration) error
	// Write applies a mixed batch of puts and deletes atomically. A key
	// written twice keeps the later op.
	Write(ctx context.Context, ops []BatchOp) error
	// NewRangeIterator walks keys in [start, end) in byte order at one point
	// in time; an empty end means to the last key.
	NewRangeIterator(ctx context.Context, start, end string) (Iterator, error)
	// Sync makes every acknowledged write durable now, whatever the sync policy.
	Sync(ctx context.Context) error
	// Stats returns the engine's counters.
	Stats(ctx context.Context) (Stats, error)
	// Name is "memory" or "rust".
	Name() string
	// GetWithMeta returns the value of key with its expiry and version, or
	// ErrNotFound when the key is absent or expired.
	GetWithMeta(ctx context.Context, key string) (string, KeyMeta, error)
}

// Updater is implemented by engines that apply a read-modify-write of one
// key as ONE commit evaluated against the newest value every earlier commit
// left: no transaction, no conflict, no retry, so concurrent updates of one
// key (50 clients incrementing one counter) share group commits. Every
// successful update is a commit of the key: its version changes. A refused
// update writes nothing. Engines without it (a replicated engine) run the
// same operations as transactions (internal/kv).
type Updater interface {
	// IncrBy adds delta to the decimal integer in key (a missing or expired
	// key counts as 0), keeping the key's expiry, and returns the new value.
	// ErrNotInteger or ErrIncrOverflow refuse it.
	IncrBy(ctx context.Context, key string, delta int64) (int64, error)
	// Append appends suffix to key's value (creating the key), keeping its
	// expiry, and returns the new length; ErrTooLong when the result would
	// be longer than maxLen bytes.
	Append(ctx context.Context, key, suffix string, maxLen int) (int, error)
}

// TransientArgs is implemented by engines whose Get, AppendValue, Write
// and (if they are an Updater) IncrBy copy every key and value they are
// given before returning and keep no reference to those strings
// afterwards. A caller may then pass strings
// that alias memory it reuses once the call has returned (a protocol's
// request buffer), which saves an allocation and a copy per argument.
// Engines that keep the strings (the memory engine stores them) do not
// implement it.
type TransientArgs interface {
	TransientArgs() bool
}

// ValueAppender is implemented by engines that read a value straight into
// a caller's buffer, without making a string of it.
type ValueAppender interface {
	// AppendValue appends key's value to dst and returns the extended
	// buffer, or dst and ErrNotFound when the key is absent or expired.
	AppendValue(ctx context.Context, dst []byte, key string) ([]byte, error)
}

// ValuesAppender is implemented by engines that read the values of many
// keys into a caller's buffer in one call (a pipeline of GETs): one
// crossing into the engine instead of one per key.
type ValuesAppender interface {
	// AppendValues appends the values of keys to dst, back to back, and
	// sets lens[i] (len(lens) == len(keys)) to the length of key i's
	// value, or -1 when it is absent or expired. Each key is read as
	// AppendValue reads it. On an error dst and lens are undefined.
	AppendValues(ctx context.Context, dst []byte, keys []string, lens []int) ([]byte, error)
}

// ParseInt reads a 64-bit integer exactly as Redis's string2ll does: no
// spaces, no '+', no leading zeros, no "-0", at most 20 characters.
func ParseInt(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	if s == "0" {
		return 0, true
	}
	digits := s
	if s[0] == '-' {
		digits = s[1:]
	}
	if digits == "" || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	for i := 1; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// AddInt64 is cur + delta, or false when the sum overflows.
func AddInt64(cur, delta int64) (int64, bool) {
	if (delta < 0 && cur < 0 && delta < math.MinInt64-cur) || (delta > 0 && cur > 0 && delta > math.MaxInt64-cur) {
		return 0, false
	}
	return cur + delta, true
}

// KeyMeta describes the newest visible version of a key.
type KeyMeta struct {
	ExpiresAt time.Time // absolute expiry; zero when the key does not expire
	Version   uint64    // commit sequence of the write that made this version; changes on every write of the key, same value included
}

// Iterator walks an ordered, point-in-time view. Call Next before the first
// Key/Value. Key and Value are valid only until the next call to Next or
// Close: an engine may hand out views of its own buffers, which the next
// step reuses, so a caller that keeps a key or value copies it
// (strings.Clone). An Iterator is used by one goroutine at a time: its
// calls, Close included, must not overlap.
type Iterator interface {
	// Next advances; false at the end or on error (see Error).
	Next() bool
	// Key of the current entry.
	Key() string
	// Value of the current entry.
	Value() string
	// Error returns the error that stopped iteration, if any.
	Error() error
	// Close releases the iterator; it is safe to call twice.
	Close() error
}

// Transaction buffers writes and reads at the snapshot taken when it began,
// seeing its own writes. Commit fails with ErrConflict if a key it read or
// wrote was committed by another writer after it began; a transaction that
// wrote nothing never conflicts. A Transaction is used by one goroutine.
type Transaction interface {
	// Put buffers a write of key.
	Put(key, value string) error
	// Get returns the transaction's own write of key, else the snapshot's value, or ErrNotFound.
	Get(key string) (string, error)
	// Delete buffers a delete of key.
	Delete(key string) error
	// Commit applies the buffered writes atomically, or returns ErrConflict.
	Commit() error
	// Rollback discards the buffered writes; it is safe after Commit.
	Rollback() error
	// GetWithMeta is Get with the key's expiry and version; like Get it adds
	// the key to the read set. The transaction's own write of a key has
	// Version 0 (it has no commit sequence yet).
	GetWithMeta(key string) (string, KeyMeta, error)
	// PutWithExpiry buffers a write of key that expires at expireAt (zero:
	// never). An expireAt at or before the commit's clock makes the write
	// remove the key, as SET with a past EXAT does in Redis.
	PutWithExpiry(key, value string, expireAt time.Time) error
}

// OpKind says what a BatchOp does.
type OpKind int

const (
	// OpPut sets a key.
	OpPut OpKind = iota
	// OpDelete removes a key.
	OpDelete
)

// BatchOp is one operation of Write.
type BatchOp struct {
	Kind  OpKind
	Key   string
	Value string
	// TTL, when non-zero, makes a put expire that long after the batch
	// commits; it must be at least 1 ms (a negative TTL is an error).
	TTL time.Duration
	// ExpireAt, when not zero, is the absolute expiry of a put, at
	// millisecond resolution; it excludes TTL. An ExpireAt at or before the
	// commit's clock makes the put remove the key (a delete of it, for
	// readers and for conflict checks), as SET with a past EXAT does in Redis.
	ExpireAt time.Time
}

// Stats are an engine's counters at one moment.
type Stats struct {
	Engine string `json:"engine"`
	// Keys counts live keys. The memory engine drops expired keys at once;
	// the Rust engine counts an expired key until compaction reclaims it.
	Keys               uint64  `json:"keys"`
	Reads              uint64  `json:"reads"`
	Writes             uint64  `json:"writes"`
	Deletes            uint64  `json:"deletes"`
	LiveBytes          uint64  `json:"live_bytes"`
	DeadBytes          uint64  `json:"dead_bytes"`
	Segments           uint64  `json:"segments"`
	Syncs              uint64  `json:"syncs"`
	AvgGroupCommit     float64 `json:"avg_group_commit"`
	Compactions        uint64  `json:"compactions"`
	CacheHits          uint64  `json:"hits"`
	CacheMisses        uint64  `json:"misses"`
	CacheEvictions     uint64  `json:"evictions"`
	CacheResidentBytes uint64  `json:"cache_resident_bytes"`
	CacheCapacityBytes uint64  `json:"cache_capacity_bytes"`
	CacheHitRate       float64 `json:"hit_rate"`
}

// SyncPolicy says when writes become durable.
type SyncPolicy string

const (
	// SyncAlways acknowledges a write only once it is on disk (group commit).
	SyncAlways SyncPolicy = "always"
	// SyncInterval syncs every Config.SyncInterval.
	SyncInterval SyncPolicy = "interval"
	// SyncNever leaves syncing to the operating system.
	SyncNever SyncPolicy = "never"
)

// Config holds engine options. DefaultConfig gives sound values.
type Config struct {
	// DataDir is where a durable engine keeps its files.
	DataDir string
	// Sync is the durability policy (durable engines only).
	Sync SyncPolicy
	// SyncInterval is the period of SyncInterval.
	SyncInterval time.Duration
	// CacheSize is the value cache budget in bytes (Rust engine); 0 disables it.
	CacheSize int64
	// SegmentSize is the log segment size in bytes (Rust engine).
	SegmentSize int64
	// MaxValueSize is the longest value accepted, in bytes.
	MaxValueSize int
	// NoMapReads makes the Rust engine read closed log segments with pread
	// instead of through read-only memory maps. Maps save a system call and
	// a page-cache lookup per read, but a disk I/O error under a mapped
	// page ends the process with SIGBUS rather than failing the read; set
	// this on disks whose read errors must stay errors.
	NoMapReads bool
}

// DefaultConfig returns the defaults: sync always, 64 MiB cache, 64 MiB
// segments, 64 MiB values.
func DefaultConfig() Config {
	return Config{
		DataDir:      "./data",
		Sync:         SyncAlways,
		SyncInterval: 100 * time.Millisecond,
		CacheSize:    64 << 20,
		SegmentSize:  64 << 20,
		MaxValueSize: DefaultMaxValueSize,
	}
}

// withDefaults fills zero fields with DefaultConfig's values, so a zero
// Config is a sound one.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Sync == "" {
		c.Sync = d.Sync
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = d.SegmentSize
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = d.MaxValueSize
	}
	return c
}

// Validate reports the first bad field. Zero fields stand for their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch c.Sync {
	case SyncAlways, SyncNever:
	case SyncInterval:
		if c.SyncInterval < time.Millisecond {
			return fmt.Errorf("%w: sync interval %v is below 1ms", ErrInvalidArgument, c.SyncInterval)
		}
	default:
		return fmt.Errorf("%w: sync policy %q is not always, interval or never", ErrInvalidArgument, c.Sync)
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("%w: cache size %d is negative", ErrInvalidArgument, c.CacheSize)
	}
	if c.SegmentSize < 4096 {
		return fmt.Errorf("%w: segment size %d is below 4096 bytes", ErrInvalidArgument, c.SegmentSize)
	}
	if c.MaxValueSize < 0 || c.MaxValueSize > 1<<30 {
		return fmt.Errorf("%w: max value size %d is outside 1 byte..1 GiB", ErrInvalidArgument, c.MaxValueSize)
	}
	return nil
}

// checkValue is shared by every engine so limits and messages match.
func checkValue(value string, max int) error {
	if len(value) > max {
		return fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrValueTooLarge, len(value), max)
	}
	return nil
}

// checkExpiry rejects a put carrying both a TTL and an absolute expiry.
func checkExpiry(op BatchOp) error {
	if op.TTL != 0 && !op.ExpireAt.IsZero() {
		return fmt.Errorf("%w: a put takes a TTL or an absolute expiry, not both", ErrInvalidArgument)
	}
	return nil
}

// checkTTL rejects TTLs below the 1 ms resolution.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: ttl %v is below the 1ms resolution", ErrInvalidArgument, ttl)
	}
	return nil
}

// NewStorageEngine returns an engine by name ("memory" or "rust"), not yet
// initialised. "rust" fails unless the binary was built with -tags rust.
func NewStorageEngine(name string, cfg Config) (StorageEngine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch name {
	case "memory":
		return NewMemoryEngine(cfg), nil
	case "rust":
		return newRustEngine(cfg)
	default:
		return nil, fmt.Errorf("%w: unknown engine %q (want memory or rust)", ErrInvalidArgument, name)
	}
}

// NewDefaultStorageEngine returns the Rust engine when built with -tags rust,
// else the memory engine.
func NewDefaultStorageEngine(cfg Config) (StorageEngine, error) {
	return NewStorageEngine(DefaultEngine, cfg)
}
