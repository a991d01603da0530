package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// A node whose local engine keeps files (storage.Checkpointer: the rust
// engine) snapshots by checkpoint: Snapshot runs between two applies, so a
// checkpoint taken there holds exactly the entries up to the applied index,
// and the applied index itself (it is written in the same engine commit as
// the entries). Persist streams the checkpoint's files as an archive; a
// node installing it writes the files into a staging directory, checks
// every file's checksum and the archive's, opens the staged engine and
// checks it reports the archive's index, and only then swaps it in for
// its live engine (localStore.swap). Format:
//
//	8 bytes  magic "MANTISCK"
//	1 byte   format version (1)
//	uvarint  applied index
//	string   engine name ("rust")
//	uvarint  number of files
//	then per file: string name (a plain file name), uvarint size, the
//	         file's bytes, 4 bytes CRC-32C of the file's bytes
//	4 bytes  CRC-32C of every byte before it
//
// Strings are a uvarint length and the bytes; CRCs are big endian. A node
// on another engine (a memory node in a mixed cluster) opens the archive's
// files as the archive's engine in a scratch directory and copies the
// records into a staged engine of its own.
const (
	archiveMagic   = "MANTISCK"
	archiveVersion = 1
	// maxArchiveName bounds a file name in an archive, maxArchiveFiles
	// their number and maxArchiveFile one file's size.
	maxArchiveName  = 255
	maxArchiveFiles = 1 << 20
	maxArchiveFile  = 1 << 42
)

// archiveSnapshot is a checkpoint of the local engine at one applied index.
type archiveSnapshot struct {
	dir    string
	index  uint64
	engine string
	files  []archiveFile
}

type archiveFile struct {
	name string
	size int64
}

// checkpointSnapshot takes a checkpoint of the local engine into a
// directory beside it (hard links where the filesystem allows).
func (f *fsm) checkpointSnapshot(cp storage.Checkpointer) (raft.FSMSnapshot, error) {
	dir, err := f.store.checkpointDir()
	if err != nil {
		return nil, err
	}
	index := f.applied.Load()
	start := time.Now()
	if err := cp.Checkpoint(context.Background(), dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("cluster: snapshot: checkpoint of the engine: %w", err)
	}
	files, err := listArchiveFiles(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	f.checkpoints.Add(1)
	f.log.Info("cluster: took a checkpoint for a snapshot", "index", index, "files", len(files),
		"took", time.Since(start).Round(time.Millisecond))
	return &archiveSnapshot{dir: dir, index: index, engine: f.store.name, files: files}, nil
}

// listArchiveFiles lists a checkpoint's files in name order; a checkpoint
// is flat, so anything but a regular file is an error.
func listArchiveFiles(dir string) ([]archiveFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot: list the checkpoint: %w", err)
	}
	files := make([]archiveFile, 0, len(entries))
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("cluster: snapshot: read the checkpoint: %w", err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("cluster: snapshot: the checkpoint holds %s, which is not a regular file", e.Name())
		}
		files = append(files, archiveFile{name: e.Name(), size: info.Size()})
	}
	slices.SortFunc(files, func(a, b archiveFile) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// Persist implements raft.FSMSnapshot.
func (s *archiveSnapshot) Persist(sink raft.SnapshotSink) error {
	return persistSnapshot(sink, s.index, s.write)
}

func (s *archiveSnapshot) write(w io.Writer) error {
	h := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	var scratch []byte
	scratch = append(scratch, archiveMagic...)
	scratch = append(scratch, archiveVersion)
	scratch = binary.AppendUvarint(scratch, s.index)
	scratch = appendString(scratch, s.engine)
	scratch = binary.AppendUvarint(scratch, uint64(len(s.files)))
	if _, err := bw.Write(scratch); err != nil {
		return err
	}
	for _, af := range s.files {
		scratch = appendString(scratch[:0], af.name)
		scratch = binary.AppendUvarint(scratch, uint64(af.size))
		if _, err := bw.Write(scratch); err != nil {
			return err
		}
		sum, err := copyFileCRC(bw, filepath.Join(s.dir, af.name), af.size)
		if err != nil {
			return err
		}
		if _, err := bw.Write(binary.BigEndian.AppendUint32(scratch[:0], sum)); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, h.Sum32()))
	return err
}

// copyFileCRC copies exactly size bytes of the file at path to w and
// returns their CRC-32C. Checkpoint files do not change after the
// checkpoint; one that did would no longer match its listed size.
func copyFileCRC(w io.Writer, path string, size int64) (uint32, error) {
	file, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(file, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s has %d bytes, %d were listed", path, n, size)
	}
	return h.Sum32(), err
}

// Release implements raft.FSMSnapshot: the checkpoint's directory goes.
func (s *archiveSnapshot) Release() { _ = os.RemoveAll(s.dir) }

// archiveHeader is the start of an archive.
type archiveHeader struct {
	index  uint64
	engine string
	files  uint64
}

func readArchiveHeader(r *checksumReader) (archiveHeader, error) {
	var h archiveHeader
	var head [len(archiveMagic) + 1]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return h, fmt.Errorf("%w: snapshot archive header: %w", storage.ErrCorruption, err)
	}
	if string(head[:len(archiveMagic)]) != archiveMagic || head[len(archiveMagic)] != archiveVersion {
		return h, fmt.Errorf("%w: not a MantisDB snapshot archive of format %d", storage.ErrCorruption, archiveVersion)
	}
	var err error
	if h.index, err = binary.ReadUvarint(r); err != nil {
		return h, fmt.Errorf("%w: snapshot archive index: %w", storage.ErrCorruption, err)
	}
	name, err := readArchiveString(r, 64)
	if err != nil {
		return h, fmt.Errorf("snapshot archive engine: %w", err)
	}
	h.engine = name
	if h.files, err = binary.ReadUvarint(r); err != nil || h.files > maxArchiveFiles {
		return h, fmt.Errorf("%w: snapshot archive file count %d: %v", storage.ErrCorruption, h.files, err)
	}
	return h, nil
}

func readArchiveString(r *checksumReader, max uint64) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", fmt.Errorf("%w: %w", storage.ErrCorruption, err)
	}
	if n == 0 || n > max {
		return "", fmt.Errorf("%w: a name of %d bytes", storage.ErrCorruption, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("%w: %w", storage.ErrCorruption, err)
	}
	return string(b), nil
}

// restoreArchive installs a checkpoint archive (see Restore).
func (f *fsm) restoreArchive(br *bufio.Reader) error {
	r := &checksumReader{r: br, h: crc32.New(castagnoli)}
	h, err := readArchiveHeader(r)
	if err != nil {
		return err
	}
	if cur := f.applied.Load(); cur >= h.index {
		f.log.Info("cluster: keeping the local engine, which is at or past the snapshot", "applied", cur, "snapshot", h.index)
		return nil
	}
	start := time.Now()
	staged, err := f.stageArchive(r, h)
	if err != nil {
		return fmt.Errorf("cluster: snapshot archive at index %d refused: %w", h.index, err)
	}
	if err := f.install(staged, h.index); err != nil {
		return err
	}
	f.archiveRestores.Add(1)
	f.log.Info("cluster: installed a snapshot archive", "index", h.index, "files", h.files, "engine", h.engine,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// stageArchive unpacks and verifies an archive and returns an open engine
// of this node's kind holding it, at h.index.
func (f *fsm) stageArchive(r *checksumReader, h archiveHeader) (storage.StorageEngine, error) {
	same := f.store.durable() && h.engine == f.store.name
	dir := f.store.unpackDir()
	if same {
		dir = f.store.staging()
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := unpackArchive(r, dir, h.files); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// The files are whole and as sent; now they must open as an engine
	// that reports the archive's index.
	src, err := f.store.openAs(h.engine, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: the archive's files do not open: %w", storage.ErrCorruption, err)
	}
	got, err := readApplied(src)
	if err == nil && got != h.index {
		err = fmt.Errorf("%w: the archive's engine reports applied index %d, its header %d", storage.ErrCorruption, got, h.index)
	}
	if err != nil {
		_ = src.Close()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if same {
		return src, nil
	}
	// Another engine's files: copy the records into a staged engine of ours.
	defer func() {
		_ = src.Close()
		_ = os.RemoveAll(dir)
	}()
	staged, err := f.store.stage()
	if err != nil {
		return nil, err
	}
	if err := copyRecords(src, staged, h.index); err != nil {
		f.store.discard(staged)
		return nil, fmt.Errorf("copy the archive's %s records into the %s engine: %w", h.engine, f.store.name, err)
	}
	return staged, nil
}

// unpackArchive writes an archive's files into dir (created), checking
// each file's checksum, then the archive's; every file is synced.
func unpackArchive(r *checksumReader, dir string, files uint64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for i := range files {
		name, err := readArchiveString(r, maxArchiveName)
		if err != nil {
			return fmt.Errorf("file %d name: %w", i, err)
		}
		if !plainFileName(name) {
			return fmt.Errorf("%w: the archive names a file %q", storage.ErrCorruption, name)
		}
		size, err := binary.ReadUvarint(r)
		if err != nil || size > maxArchiveFile {
			return fmt.Errorf("%w: size %d of %s: %v", storage.ErrCorruption, size, name, err)
		}
		if err := unpackFile(r, filepath.Join(dir, name), int64(size)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	sum := r.h.Sum32()
	var got [4]byte
	if _, err := io.ReadFull(r.r, got[:]); err != nil {
		return fmt.Errorf("%w: archive checksum: %w", storage.ErrCorruption, err)
	}
	if binary.BigEndian.Uint32(got[:]) != sum {
		return fmt.Errorf("%w: archive checksum mismatch", storage.ErrCorruption)
	}
	if _, err := r.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: bytes after the archive's checksum", storage.ErrCorruption)
	}
	return syncDir(dir)
}

// plainFileName accepts a file name that stays inside the staging
// directory: no separators, not "." or "..".
func plainFileName(name string) bool {
	return name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00") && filepath.Base(name) == name
}

// unpackFile writes size bytes from r into a new file at path and checks
// the CRC-32C that follows them.
func unpackFile(r *checksumReader, path string, size int64) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer file.Close()
	h := crc32.New(castagnoli)
	if _, err := io.CopyN(io.MultiWriter(file, h), r, size); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: the archive ends inside the file", storage.ErrCorruption)
		}
		return err
	}
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return fmt.Errorf("%w: file checksum: %w", storage.ErrCorruption, err)
	}
	if binary.BigEndian.Uint32(sum[:]) != h.Sum32() {
		return fmt.Errorf("%w: file checksum mismatch", storage.ErrCorruption)
	}
	if err := file.Sync(); err != nil {
		return err
	}
	return file.Close()
}

// copyRecords copies every replicated record of src into dst, then the
// applied index, in bounded writes; records already expired are left out.
func copyRecords(src, dst storage.StorageEngine, index uint64) error {
	ctx := context.Background()
	it, err := src.NewIterator(ctx, "")
	if err != nil {
		return err
	}
	defer it.Close()
	nowMs := time.Now().UnixMilli()
	var ops []storage.BatchOp
	size := 0
	for it.Next() {
		k, v := it.Key(), it.Value()
		if k == appliedKey {
			// Written below; the cluster's other records (sessions,
			// tombstones) are replicated state and travel.
			continue
		}
		rec, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		ttl, keep := engineTTL(rec.expiryMs, nowMs)
		if !keep {
			continue
		}
		// Iterator views last until the next step: the batch keeps copies.
		ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: strings.Clone(k), Value: strings.Clone(v), TTL: ttl})
		size += len(k) + len(v)
		if size >= restoreBatchBytes || len(ops) >= 4096 {
			if err := dst.Write(ctx, ops); err != nil {
				return err
			}
			ops, size = ops[:0], 0
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: appliedKey, Value: appliedValue(index)})
	return dst.Write(ctx, ops)
}
