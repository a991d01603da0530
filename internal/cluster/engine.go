// Package cluster is MantisDB's replicated storage engine: a group of nodes
// agreeing on every write through hashicorp/raft, each applying the agreed
// entries to its own local engine (memory or rust). Engine implements
// storage.StorageEngine, so every protocol runs on a cluster unchanged.
// DESIGN.md in this directory explains the choices.
package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/mantisdb/mantisdb/storage"
)

const defaultApplyTimeout = 10 * time.Second

// Raft timing of a node whose configuration leaves it zero. A follower
// stands for election once a check of its heartbeat timer (every 0.3-0.6 s,
// raft randomises it between one and two timeouts) finds no contact for
// 0.3 s; a candidate whose round fails tries again after 0.3-0.6 s; a leader
// that cannot reach a majority for 0.3 s steps down. After a leader dies,
// the election waits mostly for both survivors to stand: the first one's
// pre-vote is refused while the other still follows the dead leader, and
// it tries again after an election timeout (cluster-harness.md shows the
// breakdown per kill). At 500 ms each, 2-vCPU runs with a load of 30 had an
// election p99 of 2.3-3.3 s; these values scale every part by 0.6.
// Heartbeats go out every 30-60 ms (a tenth of the timeout, randomised),
// from their own goroutine per follower, so a busy leader still keeps its
// followers.
const (
	defaultHeartbeatTimeout   = 300 * time.Millisecond
	defaultElectionTimeout    = 300 * time.Millisecond
	defaultLeaderLeaseTimeout = 300 * time.Millisecond
)

// Config is one node's configuration.
type Config struct {
	// NodeID names this node in the cluster, permanently: a node removed
	// from the cluster rejoins under a new id.
	NodeID string
	// RaftAddr is the host:port the node listens on for raft and cluster
	// RPC traffic (":0" picks a port, see Engine.RaftAddr).
	RaftAddr string
	// AdvertiseAddr is the address other nodes dial; empty means the
	// listener's address, which must then not be a wildcard.
	AdvertiseAddr string
	// Bootstrap makes a node without raft state start a new cluster of one.
	Bootstrap bool
	// Join is the raft address of any member; a node without raft state
	// asks it to add this node.
	Join string
	// Engine is the local engine's name ("memory" or "rust") and
	// EngineConfig its configuration (EngineConfig.MaxValueSize is the
	// longest user value).
	Engine       string
	EngineConfig storage.Config
	// Consistency is the read level when the request names none.
	Consistency Consistency
	// Raft timing; zero fields take defaultHeartbeatTimeout,
	// defaultElectionTimeout and defaultLeaderLeaseTimeout.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is how many entries since the last snapshot start
	// a new one; TrailingLogs how many entries a snapshot leaves in the log
	// (a node further behind catches up by snapshot). Zero: raft defaults.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// ApplyTimeout bounds a write or a read barrier when the request's
	// context has no deadline.
	ApplyTimeout time.Duration
	// Logger receives the node's events; raft's own log goes there at warn
	// level and above.
	Logger *slog.Logger

	// syncApply keeps the engine's own sync policy in Apply (the behaviour
	// before the raft log became the only durability point), and
	// noFreelistSync opens the raft log with bbolt's NoFreelistSync: the
	// alternatives the write benchmark compares.
	syncApply, noFreelistSync bool
}

// The data directory of a node holds each part in its own subdirectory.
const (
	engineSubdir   = "engine"
	raftSubdir     = "raft"
	snapshotSubdir = "snapshots"
	raftDBFile     = "raft.db"
	retainSnaps    = 2
)

type engineState int32

const (
	stateNew engineState = iota
	stateOpen
	stateClosed
)

// Engine is one node of a cluster, a storage.StorageEngine whose writes go
// through the leader and whose reads honour a consistency level (see
// WithConsistency). It is safe for concurrent use.
type Engine struct {
	cfg Config

	lifecycle sync.Mutex
	state     atomic.Int32

	raft  *raft.Raft
	fsm   *fsm
	mux   *muxLayer
	trans *gatedTransport
	bolt  *raftboltdb.BoltStore
	// logStore is the raft log as raft sees it: bolt, timed.
	logStore *timedLogStore
	// logs is the raft log with raft's cache of recent entries in front.
	logs    raft.LogStore
	fwd     *forwarder
	batcher *proposalBatcher
	advAddr string
	// hasState says raft state existed when the node started (a restart).
	hasState bool

	barrierMu sync.Mutex
	readyTerm atomic.Uint64
	// leaderReads coalesces quorum checks on the leader; linearReads
	// coalesces this node's linearizable reads (see readindex.go).
	leaderReads readRounds
	linearReads readRounds

	rpcMu      sync.Mutex
	rpcServed  map[net.Conn]struct{}
	rpcClosing bool
	rpcConns   sync.WaitGroup
	stopped    chan struct{}
	stopErr    atomic.Pointer[error]

	reads atomic.Uint64
	log   *slog.Logger
	// sessions name this node's writes; resends counts writes sent again
	// after their answer was lost (sessions.go).
	sessions sessionPool
	resends  atomic.Uint64
	// elections counts candidacies, votes and election times (elections.go).
	elections electionFigures
}

// New returns a node, not yet started: Init starts it.
func New(cfg Config) (*Engine, error) {
	if cfg.NodeID == "" {
		return nil, fmt.Errorf("%w: a cluster node needs a node id", storage.ErrInvalidArgument)
	}
	if cfg.RaftAddr == "" {
		return nil, fmt.Errorf("%w: a cluster node needs a raft address", storage.ErrInvalidArgument)
	}
	if cfg.Bootstrap && cfg.Join != "" {
		return nil, fmt.Errorf("%w: --bootstrap and --join exclude each other: bootstrap the first node, join the others", storage.ErrInvalidArgument)
	}
	if cfg.Engine == "" {
		cfg.Engine = storage.DefaultEngine
	}
	if cfg.Consistency == "" {
		cfg.Consistency = Linearizable
	}
	if _, err := ParseConsistency(string(cfg.Consistency)); err != nil {
		return nil, err
	}
	if cfg.EngineConfig.MaxValueSize == 0 {
		cfg.EngineConfig.MaxValueSize = storage.DefaultMaxValueSize
	}
	if err := cfg.EngineConfig.Validate(); err != nil {
		return nil, err
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = defaultApplyTimeout
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = defaultHeartbeatTimeout
	}
	if cfg.ElectionTimeout <= 0 {
		cfg.ElectionTimeout = defaultElectionTimeout
	}
	if cfg.LeaderLeaseTimeout <= 0 {
		cfg.LeaderLeaseTimeout = defaultLeaderLeaseTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Engine{cfg: cfg, fwd: newForwarder(), stopped: make(chan struct{}), log: cfg.Logger.With("node", cfg.NodeID)}
	e.batcher = newProposalBatcher(e.fwd)
	e.leaderReads = readRounds{timeout: cfg.ApplyTimeout, fetch: func(ctx context.Context) (uint64, error) {
		return e.leaderReadIndex(ctx, true)
	}}
	e.linearReads = readRounds{timeout: cfg.ApplyTimeout, fetch: func(ctx context.Context) (uint64, error) {
		return e.fetchReadIndex(ctx, true)
	}}
	return e, nil
}

// Name is "cluster/" and the local engine's name.
func (e *Engine) Name() string { return "cluster/" + e.cfg.Engine }

// Init starts the node with its data in dataDir (empty: the engine
// configuration's DataDir): the local engine in engine/, raft's log and
// stable store in raft/raft.db, snapshots in snapshots/. A node without
// raft state bootstraps or joins as configured; Init returns once a join
// was accepted.
func (e *Engine) Init(dataDir string) error {
	e.lifecycle.Lock()
	defer e.lifecycle.Unlock()
	switch engineState(e.state.Load()) {
	case stateOpen:
		return fmt.Errorf("%w: cluster node is already initialised", storage.ErrInvalidArgument)
	case stateClosed:
		return storage.ErrClosed
	}
	if dataDir == "" {
		dataDir = e.cfg.EngineConfig.DataDir
	}
	if err := e.start(dataDir); err != nil {
		e.teardown()
		return err
	}
	e.state.Store(int32(stateOpen))
	if e.cfg.Join != "" && !e.hadState() {
		if err := e.join(); err != nil {
			e.state.Store(int32(stateClosed))
			e.teardown()
			return err
		}
	}
	return nil
}

func (e *Engine) start(dataDir string) error {
	for _, d := range []string{raftSubdir, snapshotSubdir} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o750); err != nil {
			return fmt.Errorf("cluster: create %s: %w", d, err)
		}
	}
	ecfg := e.cfg.EngineConfig
	ecfg.MaxValueSize += recordHeaderSize
	// The raft log is the durability point: every committed entry is
	// fsynced in a majority's raft-boltdb log before any node applies it,
	// and a node re-applies from its last snapshot whatever its engine
	// lost. So Apply does not fsync the engine per batch; the engine is
	// synced when a snapshot is taken and on a clean stop (DESIGN.md,
	// "Durability").
	if !e.cfg.syncApply {
		ecfg.Sync = storage.SyncNever
	}
	store := &localStore{name: e.cfg.Engine, cfg: ecfg, dir: filepath.Join(dataDir, engineSubdir)}
	local, err := store.open()
	if err != nil {
		return err
	}
	f, err := newFSM(store, local, e.log, e.halt)
	if err != nil {
		_ = local.Close()
		return err
	}
	e.fsm = f

	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft/" + e.cfg.NodeID, Level: hclog.Warn, Output: slogWriter{e.log}})
	// bbolt's NoFreelistSync (no freelist pages in each commit) was measured
	// and made no difference above the noise: an append still fsyncs twice
	// (docs/performance/cluster.md). Bolt's defaults stay.
	opts := raftboltdb.Options{Path: filepath.Join(dataDir, raftSubdir, raftDBFile)}
	if e.cfg.noFreelistSync {
		opts.BoltOptions = &bbolt.Options{NoFreelistSync: true}
	}
	bolt, err := raftboltdb.New(opts)
	if err != nil {
		return fmt.Errorf("cluster: open the raft log: %w", err)
	}
	e.bolt = bolt
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dataDir, snapshotSubdir), retainSnaps, hlog)
	if err != nil {
		return fmt.Errorf("cluster: open the snapshot store: %w", err)
	}
	ln, err := net.Listen("tcp", e.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("cluster: listen on %s: %w", e.cfg.RaftAddr, err)
	}
	adv := ln.Addr()
	if e.cfg.AdvertiseAddr != "" {
		if adv, err = net.ResolveTCPAddr("tcp", e.cfg.AdvertiseAddr); err != nil {
			_ = ln.Close()
			return fmt.Errorf("%w: advertise address: %w", storage.ErrInvalidArgument, err)
		}
	}
	if ta, ok := adv.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		_ = ln.Close()
		return fmt.Errorf("%w: raft address %s is a wildcard; set an advertise address other nodes can dial", storage.ErrInvalidArgument, adv)
	}
	e.advAddr = adv.String()
	e.mux = newMuxLayer(ln, adv, e.serveRPC)
	e.fwd.dialer = e.mux.dialer
	e.trans = &gatedTransport{NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: e.mux, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(e.cfg.NodeID)
	rc.Logger = hlog
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	// Telemetry only: raft then skips the per-peer copies of its
	// replication metrics (one name built per RPC), which nothing here
	// reads. Safety does not depend on metrics.
	rc.NoLegacyTelemetry = true
	rc.HeartbeatTimeout = e.cfg.HeartbeatTimeout
	rc.ElectionTimeout = e.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = e.cfg.LeaderLeaseTimeout
	if e.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = e.cfg.SnapshotThreshold
	}
	if e.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = e.cfg.SnapshotInterval
	}
	if e.cfg.TrailingLogs > 0 {
		rc.TrailingLogs = e.cfg.TrailingLogs
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("%w: raft configuration: %w", storage.ErrInvalidArgument, err)
	}
	has, err := raft.HasExistingState(bolt, bolt, snaps)
	if err != nil {
		return fmt.Errorf("cluster: read raft state: %w", err)
	}
	e.hasState = has
	if !has && e.cfg.Bootstrap {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(e.advAddr)}}}
		if err := raft.BootstrapCluster(rc, bolt, bolt, snaps, e.trans, conf); err != nil {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	e.logStore = &timedLogStore{LogStore: bolt}
	logs, err := raft.NewLogCache(512, e.logStore)
	if err != nil {
		return fmt.Errorf("cluster: raft log cache: %w", err)
	}
	e.logs = logs
	r, err := raft.NewRaft(rc, f, logs, bolt, snaps, e.trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	e.raft = r
	e.elections.register(r)
	e.log.Info("cluster node started", "raft_addr", e.advAddr, "existing_state", has, "applied", f.applied.Load())
	return nil
}

func (e *Engine) hadState() bool { return e.hasState }

// teardown releases whatever start opened, in reverse order.
func (e *Engine) teardown() {
	e.fwd.close()
	if e.raft != nil {
		if err := e.raft.Shutdown().Error(); err != nil {
			e.log.Warn("cluster: raft shutdown", "error", err)
		}
	}
	if e.trans != nil {
		// Before the stores close: a heartbeat in flight may still write
		// the raft term (heartbeat.go).
		e.trans.closeHeartbeats()
		_ = e.trans.Close()
	} else if e.mux != nil {
		_ = e.mux.Close()
	}
	e.closeRPC()
	if e.bolt != nil {
		_ = e.bolt.Close()
	}
	if e.fsm != nil {
		e.fsm.mu.Lock()
		// A clean stop leaves the engine synced, so the next start replays
		// nothing it applied.
		if err := e.fsm.local.Sync(context.Background()); err != nil {
			e.log.Warn("cluster: sync the engine on stop", "error", err)
		}
		_ = e.fsm.local.Close()
		e.fsm.mu.Unlock()
	}
}

// Close stops the node: it leaves the cluster's configuration unchanged
// (see Remove), so the others see it as down.
func (e *Engine) Close() error {
	e.lifecycle.Lock()
	defer e.lifecycle.Unlock()
	if engineState(e.state.Swap(int32(stateClosed))) != stateOpen {
		return nil
	}
	e.teardown()
	return nil
}

// halt stops a node whose engine failed in Apply.
func (e *Engine) halt(err error) {
	if !e.stopErr.CompareAndSwap(nil, &err) {
		return
	}
	close(e.stopped)
	go func() { _ = e.raft.Shutdown().Error() }()
}

// Stopped is closed when the node stopped itself after an engine failure;
// StopError then says why. A server exits on it, to be restarted.
func (e *Engine) Stopped() <-chan struct{} { return e.stopped }

// StopError is the failure that stopped the node, or nil.
func (e *Engine) StopError() error {
	if p := e.stopErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (e *Engine) checkOpen() error {
	if engineState(e.state.Load()) != stateOpen {
		return storage.ErrClosed
	}
	return e.fsm.failure()
}

func (e *Engine) isLeader() bool { return e.raft.State() == raft.Leader }

// RaftAddr is the address other nodes reach this node at.
func (e *Engine) RaftAddr() string { return e.advAddr }

// NodeID is this node's id.
func (e *Engine) NodeID() string { return e.cfg.NodeID }

func (e *Engine) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, e.cfg.ApplyTimeout)
}

// propose replicates a proposal through the leader and returns its answer.
func (e *Engine) propose(ctx context.Context, c command) error {
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	return e.proposeOnce(ctx, c)
}

// applyLocal logs a proposal on this node, which must lead, and waits for
// its answer from the fsm.
func (e *Engine) applyLocal(c command) error {
	f, err := e.startApply(c)
	if err != nil {
		return err
	}
	return applyOutcome(f)
}

func checkKey(key string) error {
	if len(key) == 0 || len(key) > storage.MaxKeySize {
		return fmt.Errorf("%w: length %d is outside 1..=%d", storage.ErrInvalidKey, len(key), storage.MaxKeySize)
	}
	if isReserved(key) {
		return fmt.Errorf("%w: keys starting with %q are reserved by the cluster", storage.ErrInvalidKey, reservedPrefix)
	}
	return nil
}

func (e *Engine) checkValue(value string) error {
	if max := e.cfg.EngineConfig.MaxValueSize; len(value) > max {
		return fmt.Errorf("%w: %d bytes exceeds the limit of %d", storage.ErrValueTooLarge, len(value), max)
	}
	return nil
}

// proposalOps validates user ops and converts them.
func (e *Engine) proposalOps(ops []storage.BatchOp) ([]op, error) {
	out := make([]op, 0, len(ops))
	for _, o := range ops {
		if err := checkKey(o.Key); err != nil {
			return nil, err
		}
		switch o.Kind {
		case storage.OpDelete:
			out = append(out, op{del: true, key: o.Key})
		case storage.OpPut:
			if err := e.checkValue(o.Value); err != nil {
				return nil, err
			}
			if o.TTL != 0 && o.TTL < time.Millisecond {
				return nil, fmt.Errorf("%w: ttl %v is below the 1ms resolution", storage.ErrInvalidArgument, o.TTL)
			}
			if !o.ExpireAt.IsZero() {
				if o.TTL != 0 {
					return nil, fmt.Errorf("%w: a put takes a TTL or an absolute expiry, not both", storage.ErrInvalidArgument)
				}
				// Absolute already: the leader keeps it; one at or before
				// the entry's clock removes the key.
				out = append(out, op{key: o.Key, value: o.Value, expiry: max(o.ExpireAt.UnixMilli(), 1), abs: true})
				continue
			}
			out = append(out, op{key: o.Key, value: o.Value, expiry: o.TTL.Milliseconds()})
		default:
			return nil, fmt.Errorf("%w: unknown op kind %d", storage.ErrInvalidArgument, o.Kind)
		}
	}
	return out, nil
}

// Write implements storage.StorageEngine: one raft entry, applied atomically.
func (e *Engine) Write(ctx context.Context, ops []storage.BatchOp) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	c, err := e.proposalOps(ops)
	if err != nil {
		return err
	}
	if len(c) == 0 {
		return nil
	}
	return e.propose(ctx, command{kind: kindProposal, ops: c})
}

// Put implements storage.StorageEngine.
func (e *Engine) Put(ctx context.Context, key, value string) error {
	return e.Write(ctx, []storage.BatchOp{{Kind: storage.OpPut, Key: key, Value: value}})
}

// PutWithTTL implements storage.StorageEngine; the leader turns the TTL into
// an absolute expiry from its clock.
func (e *Engine) PutWithTTL(ctx context.Context, key, value string, ttl time.Duration) error {
	if ttl < time.Millisecond {
		if err := e.checkOpen(); err != nil {
			return err
		}
		if err := checkKey(key); err != nil {
			return err
		}
		return fmt.Errorf("%w: ttl %v is below the 1ms resolution", storage.ErrInvalidArgument, ttl)
	}
	return e.Write(ctx, []storage.BatchOp{{Kind: storage.OpPut, Key: key, Value: value, TTL: ttl}})
}

// Delete implements storage.StorageEngine.
func (e *Engine) Delete(ctx context.Context, key string) error {
	return e.Write(ctx, []storage.BatchOp{{Kind: storage.OpDelete, Key: key}})
}

// BatchPut implements storage.StorageEngine.
func (e *Engine) BatchPut(ctx context.Context, kvs map[string]string) error {
	keys := make([]string, 0, len(kvs))
	for k := range kvs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ops := make([]storage.BatchOp, len(keys))
	for i, k := range keys {
		ops[i] = storage.BatchOp{Kind: storage.OpPut, Key: k, Value: kvs[k]}
	}
	return e.Write(ctx, ops)
}

// BatchDelete implements storage.StorageEngine.
func (e *Engine) BatchDelete(ctx context.Context, keys []string) error {
	ops := make([]storage.BatchOp, len(keys))
	for i, k := range keys {
		ops[i] = storage.BatchOp{Kind: storage.OpDelete, Key: k}
	}
	return e.Write(ctx, ops)
}

// Get implements storage.StorageEngine at ctx's consistency.
func (e *Engine) Get(ctx context.Context, key string) (string, error) {
	r, err := e.getRecord(ctx, key)
	return r.value, err
}

// getRecord reads key's live record at ctx's consistency: its value, its
// version (the raft index that wrote it) and its absolute expiry.
func (e *Engine) getRecord(ctx context.Context, key string) (record, error) {
	if err := e.checkOpen(); err != nil {
		return record{}, err
	}
	if err := checkKey(key); err != nil {
		return record{}, err
	}
	if err := e.readBarrier(ctx); err != nil {
		return record{}, err
	}
	e.reads.Add(1)
	local, release := e.fsm.engine()
	raw, err := local.Get(ctx, key)
	release()
	if err != nil {
		return record{}, err
	}
	r, err := decodeRecord(key, raw)
	if err != nil {
		return record{}, err
	}
	if !r.liveAt(time.Now().UnixMilli()) {
		return record{}, storage.ErrNotFound
	}
	return r, nil
}

// BatchGet implements storage.StorageEngine at ctx's consistency.
func (e *Engine) BatchGet(ctx context.Context, keys []string) (map[string]string, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
	}
	if err := e.readBarrier(ctx); err != nil {
		return nil, err
	}
	e.reads.Add(uint64(len(keys)))
	local, release := e.fsm.engine()
	raw, err := local.BatchGet(ctx, keys)
	release()
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		r, err := decodeRecord(k, v)
		if err != nil {
			return nil, err
		}
		if r.liveAt(now) {
			out[k] = r.value
		}
	}
	return out, nil
}

// NewIterator implements storage.StorageEngine at ctx's consistency.
func (e *Engine) NewIterator(ctx context.Context, prefix string) (storage.Iterator, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if err := e.readBarrier(ctx); err != nil {
		return nil, err
	}
	local, release := e.fsm.engine()
	defer release()
	it, err := local.NewIterator(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return &iterator{it: it, nowMs: time.Now().UnixMilli()}, nil
}

// NewRangeIterator implements storage.StorageEngine at ctx's consistency.
func (e *Engine) NewRangeIterator(ctx context.Context, start, end string) (storage.Iterator, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if err := e.readBarrier(ctx); err != nil {
		return nil, err
	}
	local, release := e.fsm.engine()
	defer release()
	it, err := local.NewRangeIterator(ctx, start, end)
	if err != nil {
		return nil, err
	}
	return &iterator{it: it, nowMs: time.Now().UnixMilli()}, nil
}

// HealthCheck implements storage.StorageEngine: the local engine answers
// and the node has not stopped. It does not require a leader.
func (e *Engine) HealthCheck(ctx context.Context) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	local, release := e.fsm.engine()
	defer release()
	return local.HealthCheck(ctx)
}

// Sync implements storage.StorageEngine: it syncs the local engine, which
// Apply leaves to snapshots and stops. Every acknowledged write is durable
// before Sync anyway, in a majority's raft log; Sync makes this node's
// engine hold it too, so a restart after a machine crash replays less.
func (e *Engine) Sync(ctx context.Context) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	local, release := e.fsm.engine()
	defer release()
	return local.Sync(ctx)
}

// Stats implements storage.StorageEngine: the local engine's figures, with
// keys, writes and deletes counted as users see them (applied entries'
// puts and deletes, the cluster's own keys left out) and reads as served
// by this node.
func (e *Engine) Stats(ctx context.Context) (storage.Stats, error) {
	if err := e.checkOpen(); err != nil {
		return storage.Stats{}, err
	}
	local, release := e.fsm.engine()
	s, err := local.Stats(ctx)
	if err == nil {
		var own uint64
		if own, err = reservedKeys(ctx, local); err == nil {
			s.Keys -= min(own, s.Keys)
		}
	}
	release()
	if err != nil {
		return storage.Stats{}, err
	}
	s.Engine = e.Name()
	s.Writes = e.fsm.puts.Load()
	s.Deletes = e.fsm.deletes.Load()
	s.Reads = e.reads.Load()
	return s, nil
}

// slogWriter carries raft's hclog lines into the node's slog logger.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn(string(trimNewline(p)), "source", "raft")
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// IsLeader reports whether this node leads the cluster now.
func (e *Engine) IsLeader() bool {
	return engineState(e.state.Load()) == stateOpen && e.isLeader()
}

// LeaderID is the id of the node this node believes leads, or "".
func (e *Engine) LeaderID() string {
	if engineState(e.state.Load()) != stateOpen {
		return ""
	}
	_, id := e.raft.LeaderWithID()
	return string(id)
}
