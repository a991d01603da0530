//go:build rust

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mantisdb/mantisdb/storage"
)

// memSink is a raft.SnapshotSink into memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "test" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

// newStoreFSM opens an fsm over a fresh local engine of the named kind in dir.
func newStoreFSM(t *testing.T, name, dir string) *fsm {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.MaxValueSize += recordHeaderSize
	store := &localStore{name: name, cfg: cfg, dir: filepath.Join(dir, engineSubdir)}
	local, err := store.open()
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFSM(store, local, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.mu.Lock()
		_ = f.local.Close()
		f.mu.Unlock()
	})
	return f
}

// recordValue reads key's value from f's local engine.
func recordValue(t *testing.T, f *fsm, key string) (string, error) {
	t.Helper()
	e, release := f.engine()
	defer release()
	raw, err := e.Get(context.Background(), key)
	if err != nil {
		return "", err
	}
	r, err := decodeRecord(key, raw)
	return r.value, err
}

// sourceArchive applies 200 entries to a rust fsm and returns it with its
// snapshot, not yet released.
func sourceArchive(t *testing.T) (*fsm, *archiveSnapshot, []byte) {
	t.Helper()
	src := newStoreFSM(t, "rust", t.TempDir())
	for i := range 200 {
		c := command{kind: kindProposal, ops: []op{
			{key: fmt.Sprintf("k%03d", i), value: strings.Repeat(fmt.Sprint(i), 20)},
			{key: fmt.Sprintf("ttl%03d", i), value: "t", expiry: time.Hour.Milliseconds()},
		}}
		if a := src.ApplyBatch([]*raft.Log{entryLog(t, uint64(i+1), c)}); a[0] != nil {
			t.Fatal(a[0])
		}
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	as, ok := snap.(*archiveSnapshot)
	if !ok {
		t.Fatalf("the rust engine's snapshot is a %T, want a checkpoint archive", snap)
	}
	if as.index != 200 || len(as.files) == 0 {
		t.Fatalf("checkpoint at index %d with %d files", as.index, len(as.files))
	}
	var sink memSink
	if err := as.Persist(&sink); err != nil || sink.cancelled {
		t.Fatalf("Persist: %v (cancelled %v)", err, sink.cancelled)
	}
	return src, as, sink.Bytes()
}

// A corrupted or inconsistent archive is refused before anything is
// swapped: the node keeps its engine and its data, and no staged files stay.
// The intact archive installs, and the installed engine survives a reopen.
func TestArchiveRestoreVerifiesAndSwaps(t *testing.T) {
	_, as, archive := sourceArchive(t)

	// Same files, header naming another index: every checksum holds, but
	// the opened engine reports 200.
	wrongIndex := *as
	wrongIndex.index = 207
	var wi memSink
	if err := wrongIndex.write(&wi); err != nil {
		t.Fatal(err)
	}
	// A file name that would leave the staging directory.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "evil"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	escape := &archiveSnapshot{dir: filepath.Join(outside, "sub"), index: 300, engine: "rust", files: []archiveFile{{name: "../evil", size: 1}}}
	var es memSink
	if err := escape.write(&es); err != nil {
		t.Fatal(err)
	}
	as.Release()
	if _, err := os.Stat(as.dir); !os.IsNotExist(err) {
		t.Fatalf("Release left the checkpoint directory: %v", err)
	}

	flip := func(at int) []byte {
		b := bytes.Clone(archive)
		b[at] ^= 0x40
		return b
	}
	dstDir := t.TempDir()
	dst := newStoreFSM(t, "rust", dstDir)
	if a := dst.ApplyBatch([]*raft.Log{entryLog(t, 1, put("mine", "1"))}); a[0] != nil {
		t.Fatal(a[0])
	}
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"a flipped byte in a file", "file checksum mismatch", flip(len(archive) / 2)},
		{"a flipped archive checksum", "archive checksum mismatch", flip(len(archive) - 1)},
		{"a truncated archive", "", archive[:len(archive)-9]},
		{"trailing bytes", "bytes after", append(bytes.Clone(archive), 0)},
		{"a header naming another index", "reports applied index 200", wi.Bytes()},
		{"a file name leaving the directory", "names a file", es.Bytes()},
	}
	for _, tc := range cases {
		err := dst.Restore(io.NopCloser(bytes.NewReader(tc.data)))
		if !errors.Is(err, storage.ErrCorruption) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: Restore = %v, want a corruption error containing %q", tc.name, err, tc.want)
		}
		if got := dst.applied.Load(); got != 1 {
			t.Fatalf("%s: applied index %d after a refused archive, want 1", tc.name, got)
		}
		if v, err := recordValue(t, dst, "mine"); err != nil || v != "1" {
			t.Fatalf("%s: the live engine lost its data: %q, %v", tc.name, v, err)
		}
		for _, d := range []string{"engine.staging", "engine.unpack", "engine.old"} {
			if _, err := os.Stat(filepath.Join(dstDir, d)); !os.IsNotExist(err) {
				t.Fatalf("%s: %s left behind: %v", tc.name, d, err)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(outside, "evil")); err != nil || string(b) != "x" {
		t.Fatalf("a file outside the staging directory changed: %q, %v", b, err)
	}
	if dst.restores.Load() != 0 {
		t.Fatalf("%d installs counted for refused archives", dst.restores.Load())
	}

	if err := dst.Restore(io.NopCloser(bytes.NewReader(archive))); err != nil {
		t.Fatalf("Restore of the intact archive: %v", err)
	}
	if dst.applied.Load() != 200 || dst.archiveRestores.Load() != 1 || dst.restores.Load() != 1 {
		t.Fatalf("after the install: applied %d, archive installs %d, installs %d", dst.applied.Load(), dst.archiveRestores.Load(), dst.restores.Load())
	}
	if _, err := recordValue(t, dst, "mine"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a key the snapshot does not hold survived the install: %v", err)
	}
	if v, err := recordValue(t, dst, "k123"); err != nil || v != strings.Repeat("123", 20) {
		t.Fatalf("k123 after the install: %q, %v", v, err)
	}
	// A second delivery of the same archive keeps the engine.
	if err := dst.Restore(io.NopCloser(bytes.NewReader(archive))); err != nil || dst.restores.Load() != 1 {
		t.Fatalf("Restore at the same index: %v, installs %d", err, dst.restores.Load())
	}

	// A restart opens the swapped-in directory at the snapshot's index.
	dst.mu.Lock()
	_ = dst.local.Close()
	reopened, err := dst.store.open()
	if err != nil {
		dst.mu.Unlock()
		t.Fatal(err)
	}
	dst.local = reopened
	dst.mu.Unlock()
	if idx, err := readApplied(reopened); err != nil || idx != 200 {
		t.Fatalf("applied index after a reopen: %d, %v", idx, err)
	}
	if v, err := recordValue(t, dst, "k199"); err != nil || v != strings.Repeat("199", 20) {
		t.Fatalf("k199 after a reopen: %q, %v", v, err)
	}
}

// A node on the memory engine installs a rust node's archive by reading
// its files as a rust engine and copying the records.
func TestArchiveRestoreIntoAnotherEngine(t *testing.T) {
	_, as, archive := sourceArchive(t)
	as.Release()
	dir := t.TempDir()
	dst := newStoreFSM(t, "memory", dir)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(archive))); err != nil {
		t.Fatal(err)
	}
	if dst.applied.Load() != 200 || dst.archiveRestores.Load() != 1 {
		t.Fatalf("applied %d, archive installs %d", dst.applied.Load(), dst.archiveRestores.Load())
	}
	for _, k := range []string{"k000", "k199", "ttl050"} {
		if _, err := recordValue(t, dst, k); err != nil {
			t.Fatalf("%s after the install: %v", k, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "engine.unpack")); !os.IsNotExist(err) {
		t.Fatalf("the unpacked archive was left: %v", err)
	}
}
