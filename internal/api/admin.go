package api

import (
	"archive/tar"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// CheckpointContentType is the media type of a streamed checkpoint: a
// POSIX (ustar) tar archive holding the checkpoint's files, flat, with no
// directories.
const CheckpointContentType = "application/x-tar"

// checkpointWriteWindow is how long one write of a checkpoint stream may
// take. A checkpoint can outgrow the server's whole-response write
// timeout, so the deadline moves forward with every chunk instead: a
// client that keeps reading gets the whole archive, one that stops is cut
// off after this long.
const checkpointWriteWindow = 60 * time.Second

// CompactResult is the answer to POST /api/v1/admin/compact: the storage
// figures before and after the pass.
type CompactResult struct {
	DurationMS      int64  `json:"duration_ms"`
	SegmentsBefore  uint64 `json:"segments_before"`
	SegmentsAfter   uint64 `json:"segments_after"`
	DeadBytesBefore uint64 `json:"dead_bytes_before"`
	DeadBytesAfter  uint64 `json:"dead_bytes_after"`
	LiveBytesAfter  uint64 `json:"live_bytes_after"`
}

// handleCheckpoint takes a checkpoint of the engine into a scratch
// directory and streams it as a tar archive. The files are complete
// before the first byte is sent, so a failure to checkpoint is a clean
// error answer; the archive's Content-Length lets the client tell a cut
// stream from a whole one.
func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	cp, ok := s.engine.(storage.Checkpointer)
	if !ok {
		writeError(w, newError(codeNotImplemented,
			"the %s engine keeps no files, so it has no checkpoint to stream; serve with --engine rust", s.engine.Name()))
		return
	}
	dir, err := s.scratchDir()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			s.log.Error("removing a checkpoint's scratch directory", "dir", dir, "err", err)
		}
	}()
	start := time.Now()
	if err := cp.Checkpoint(r.Context(), dir); err != nil {
		s.fail(w, r, fmt.Errorf("taking a checkpoint: %w", err))
		return
	}
	files, size, err := checkpointFiles(dir)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("streaming a checkpoint", "files", len(files), "archive_bytes", size,
		"checkpoint_ms", time.Since(start).Milliseconds())
	w.Header().Set("Content-Type", CheckpointContentType)
	w.Header().Set("Content-Length", fmt.Sprint(size))
	w.Header().Set("Content-Disposition", `attachment; filename="mantisdb-checkpoint.tar"`)
	w.WriteHeader(http.StatusOK)
	out := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	if err := writeCheckpointArchive(out, dir, files); err != nil {
		// The status is sent; the client sees a short body.
		s.log.Warn("checkpoint stream cut off", "err", err)
	}
}

// scratchDir makes an empty directory for a checkpoint: in
// Options.ScratchDir, where hard links to the live segments are possible,
// else in the system's temporary directory, where the files are copied.
func (s *Server) scratchDir() (string, error) {
	var errs []error
	for _, parent := range []string{s.opts.ScratchDir, os.TempDir()} {
		if parent == "" {
			continue
		}
		dir, err := os.MkdirTemp(parent, ".mantisdb-checkpoint-")
		if err == nil {
			return dir, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("making a directory for the checkpoint: %w", errors.Join(errs...))
}

// checkpointFile is one file of a checkpoint directory.
type checkpointFile struct {
	name string
	size int64
}

// checkpointFiles lists the checkpoint's files by name and the exact size
// of their ustar archive: a 512-byte header per file, its data padded to
// 512 bytes, and two zero blocks at the end.
func checkpointFiles(dir string) ([]checkpointFile, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("listing the checkpoint: %w", err)
	}
	var files []checkpointFile
	total := int64(2 * 512)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return nil, 0, fmt.Errorf("reading the checkpoint: %w", err)
		}
		if !info.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("the checkpoint holds %s, which is not a regular file", e.Name())
		}
		files = append(files, checkpointFile{name: e.Name(), size: info.Size()})
		total += 512 + (info.Size()+511)/512*512
	}
	slices.SortFunc(files, func(a, b checkpointFile) int { return cmp.Compare(a.name, b.name) })
	return files, total, nil
}

// writeCheckpointArchive writes files of dir to w as a ustar archive.
func writeCheckpointArchive(w io.Writer, dir string, files []checkpointFile) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name,
			Size:     f.size,
			Mode:     0o600,
			ModTime:  time.Unix(0, 0),
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if err := copyFile(tw, filepath.Join(dir, f.name), f.size); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyFile copies exactly size bytes of the file at path to w: checkpoint
// files do not change, and a file that did would break the archive's
// announced length.
func copyFile(w io.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s has %d bytes, %d were listed", path, n, size)
	}
	return err
}

// deadlineWriter moves the response's write deadline forward before each
// write (see checkpointWriteWindow).
type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	// Servers that cannot set deadlines (tests' recorders) keep theirs.
	_ = d.rc.SetWriteDeadline(time.Now().Add(checkpointWriteWindow))
	return d.w.Write(p)
}

// handleCompact runs one compaction pass now and answers the storage
// figures before and after it.
func (s *Server) handleCompact(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	c, ok := s.engine.(storage.Compactor)
	if !ok {
		writeError(w, newError(codeNotImplemented,
			"the %s engine keeps no files, so it has nothing to compact; serve with --engine rust", s.engine.Name()))
		return
	}
	before, err := s.engine.Stats(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	start := time.Now()
	if err := c.Compact(r.Context()); err != nil {
		s.fail(w, r, fmt.Errorf("compacting: %w", err))
		return
	}
	took := time.Since(start)
	after, err := s.engine.Stats(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("compaction requested over HTTP", "duration_ms", took.Milliseconds(),
		"dead_bytes_before", before.DeadBytes, "dead_bytes_after", after.DeadBytes)
	writeJSON(w, http.StatusOK, CompactResult{
		DurationMS:      took.Milliseconds(),
		SegmentsBefore:  before.Segments,
		SegmentsAfter:   after.Segments,
		DeadBytesBefore: before.DeadBytes,
		DeadBytesAfter:  after.DeadBytes,
		LiveBytesAfter:  after.LiveBytes,
	})
}
