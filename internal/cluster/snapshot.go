package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// A snapshot is the local engine's replicated records at one applied index
// (the user's keys and the cluster's sessions and tombstones, sessions.go),
// streamed in byte order of the keys. Any engine can produce and load it,
// so nodes on different engines can replicate to each other. Format:
//
//	8 bytes  magic "MANTISNP"
//	1 byte   format version (1)
//	uvarint  applied index
//	then per key: uvarint key length (> 0), key, uvarint record length,
//	         record (the stored form, header included, see record.go)
//	uvarint  0 (end of keys)
//	uvarint  number of keys
//	4 bytes  CRC-32C (Castagnoli) of every byte before it, big endian
//
// Restore loads the stream into a staged engine, checks the count and the
// checksum, and only then swaps it in (localStore.swap).
const (
	snapshotMagic   = "MANTISNP"
	snapshotVersion = 1
	// restoreBatchBytes bounds one Write while a snapshot loads.
	restoreBatchBytes = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fsmSnapshot is a point-in-time iterator over the local engine.
type fsmSnapshot struct {
	it    storage.Iterator
	index uint64
}

// Snapshot implements raft.FSM. It runs between applies, so the iterator's
// point in time is exactly the applied index.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	e, release := f.engine()
	defer release()
	// Apply does not sync the engine; a snapshot does, on raft's fsm
	// goroutine between two batches, so the engine holds durably every
	// entry up to the index the snapshot covers before raft may drop them
	// from its log.
	if err := e.Sync(context.Background()); err != nil {
		return nil, fmt.Errorf("cluster: snapshot: sync the engine: %w", err)
	}
	f.snapshotSyncs.Add(1)
	if cp, ok := e.(storage.Checkpointer); ok && f.store.durable() {
		return f.checkpointSnapshot(cp)
	}
	it, err := e.NewIterator(context.Background(), "")
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot: %w", err)
	}
	return &fsmSnapshot{it: it, index: f.applied.Load()}, nil
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	return persistSnapshot(sink, s.index, s.write)
}

// persistSnapshot writes a snapshot taken at index into sink with write,
// closing the sink when it is whole and cancelling it otherwise.
func persistSnapshot(sink raft.SnapshotSink, index uint64, write func(io.Writer) error) error {
	if err := write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("cluster: persist snapshot at index %d: %w", index, err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(w io.Writer) error {
	h := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	var scratch []byte
	scratch = append(scratch, snapshotMagic...)
	scratch = append(scratch, snapshotVersion)
	scratch = binary.AppendUvarint(scratch, s.index)
	if _, err := bw.Write(scratch); err != nil {
		return err
	}
	var count uint64
	for s.it.Next() {
		k := s.it.Key()
		if k == appliedKey {
			// The header carries it; the cluster's other records
			// (sessions, tombstones) are replicated state.
			continue
		}
		scratch = binary.AppendUvarint(scratch[:0], uint64(len(k)))
		scratch = append(scratch, k...)
		scratch = binary.AppendUvarint(scratch, uint64(len(s.it.Value())))
		if _, err := bw.Write(scratch); err != nil {
			return err
		}
		if _, err := bw.WriteString(s.it.Value()); err != nil {
			return err
		}
		count++
	}
	if err := s.it.Error(); err != nil {
		return err
	}
	scratch = binary.AppendUvarint(scratch[:0], 0)
	scratch = binary.AppendUvarint(scratch, count)
	if _, err := bw.Write(scratch); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], h.Sum32())
	_, err := w.Write(sum[:])
	return err
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() { _ = s.it.Close() }

// Restore implements raft.FSM. When the local engine already holds the
// snapshot's index or later (a restart of a durable node), it is kept and
// raft replays the log after the snapshot, which the fsm skips up to its
// own applied index. Otherwise the snapshot is loaded into a staged engine,
// verified and swapped in.
func (f *fsm) Restore(rc io.ReadCloser) error {
	if err := f.failure(); err != nil {
		return err
	}
	br := bufio.NewReaderSize(rc, 1<<16)
	if head, _ := br.Peek(len(archiveMagic)); string(head) == archiveMagic {
		return f.restoreArchive(br)
	}
	r := &checksumReader{r: br, h: crc32.New(castagnoli)}
	index, err := readSnapshotHeader(r)
	if err != nil {
		return err
	}
	if cur := f.applied.Load(); cur >= index {
		f.log.Info("cluster: keeping the local engine, which is at or past the snapshot", "applied", cur, "snapshot", index)
		return nil
	}
	start := time.Now()
	staged, err := f.store.stage()
	if err != nil {
		return err
	}
	count, err := loadSnapshot(r, staged, index)
	if err != nil {
		f.store.discard(staged)
		return fmt.Errorf("cluster: load snapshot at index %d: %w", index, err)
	}
	if err := f.install(staged, index); err != nil {
		return err
	}
	f.log.Info("cluster: installed a snapshot", "index", index, "keys", count, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// install swaps a staged engine holding a snapshot at index in for the
// local engine, and checks what it swapped in reports the index. A swap
// that leaves no engine stops the node.
func (f *fsm) install(staged storage.StorageEngine, index uint64) error {
	// The cached session records describe the engine being replaced.
	f.sessions = nil
	f.mu.Lock()
	e, err := f.store.swap(f.local, staged)
	if e != nil {
		f.local = e
	}
	f.mu.Unlock()
	if e == nil {
		stopErr := fmt.Errorf("%w: no engine after a failed snapshot install: %w", ErrStopped, err)
		f.stop(nil, stopErr)
		return stopErr
	}
	if err != nil {
		return err
	}
	got, err := readApplied(e)
	if err != nil {
		return err
	}
	if got != index {
		return fmt.Errorf("%w: the installed snapshot reports applied index %d, want %d", storage.ErrCorruption, got, index)
	}
	f.setApplied(index)
	f.restores.Add(1)
	return nil
}

func readSnapshotHeader(r *checksumReader) (uint64, error) {
	var head [len(snapshotMagic) + 1]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, fmt.Errorf("%w: snapshot header: %w", storage.ErrCorruption, err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic || head[len(snapshotMagic)] != snapshotVersion {
		return 0, fmt.Errorf("%w: not a MantisDB snapshot of format %d", storage.ErrCorruption, snapshotVersion)
	}
	index, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, fmt.Errorf("%w: snapshot index: %w", storage.ErrCorruption, err)
	}
	return index, nil
}

// loadSnapshot writes the snapshot's keys and applied index into e and
// checks the trailer.
func loadSnapshot(r *checksumReader, e storage.StorageEngine, index uint64) (uint64, error) {
	ctx := context.Background()
	nowMs := time.Now().UnixMilli()
	var ops []storage.BatchOp
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		err := e.Write(ctx, ops)
		ops, size = ops[:0], 0
		return err
	}
	var count uint64
	for {
		key, err := readBytes(r)
		if err != nil {
			return count, err
		}
		if len(key) == 0 {
			break
		}
		raw, err := readBytes(r)
		if err != nil {
			return count, err
		}
		count++
		rec, err := decodeRecord(string(key), string(raw))
		if err != nil {
			return count, err
		}
		ttl, keep := engineTTL(rec.expiryMs, nowMs)
		if !keep {
			continue
		}
		ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: string(key), Value: string(raw), TTL: ttl})
		size += len(key) + len(raw)
		if size >= restoreBatchBytes || len(ops) >= 4096 {
			if err := flush(); err != nil {
				return count, err
			}
		}
	}
	want, err := binary.ReadUvarint(r)
	if err != nil {
		return count, fmt.Errorf("%w: snapshot trailer: %w", storage.ErrCorruption, err)
	}
	sum := r.h.Sum32()
	var got [4]byte
	if _, err := io.ReadFull(r.r, got[:]); err != nil {
		return count, fmt.Errorf("%w: snapshot checksum: %w", storage.ErrCorruption, err)
	}
	if want != count {
		return count, fmt.Errorf("%w: snapshot holds %d keys, its trailer says %d", storage.ErrCorruption, count, want)
	}
	if binary.BigEndian.Uint32(got[:]) != sum {
		return count, fmt.Errorf("%w: snapshot checksum mismatch", storage.ErrCorruption)
	}
	ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: appliedKey, Value: appliedValue(index)})
	return count, flush()
}

// maxSnapshotField bounds one key or record read from a stream, so a
// corrupt length cannot make a huge allocation.
const maxSnapshotField = 1 << 31

func readBytes(r *checksumReader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot record length: %w", storage.ErrCorruption, err)
	}
	if n > maxSnapshotField {
		return nil, fmt.Errorf("%w: snapshot record of %d bytes", storage.ErrCorruption, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: snapshot record: %w", storage.ErrCorruption, err)
	}
	return b, nil
}

// checksumReader hashes every byte read through it.
type checksumReader struct {
	r *bufio.Reader
	h hash.Hash32
}

func (c *checksumReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	return n, err
}

func (c *checksumReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.h.Write([]byte{b})
	}
	return b, err
}
