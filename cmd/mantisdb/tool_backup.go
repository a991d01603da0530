package main

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mantisdb/mantisdb/internal/api"
)

func backupTool() tool {
	return tool{
		name:     "backup",
		synopsis: "--target URL --to DIR [--auth-token T]",
		summary:  "copy a running server's database, as of one moment, into a new directory",
		about: `Asks the server at --target for a checkpoint (POST /api/v1/admin/checkpoint)
and writes it into DIR while the server keeps serving. The result opens as
a database (mantisdb --data-dir DIR) holding exactly the data of one moment.
DIR must not exist or be empty; the files are written under a temporary
name beside it and renamed to DIR only once all of them are complete and
synced, so DIR never holds half a backup.`,
		run: runBackup,
	}
}

func runBackup(ctx context.Context, fs *flag.FlagSet, args []string, tio toolIO) int {
	t := backupTool()
	var rf remoteFlags
	addRemoteFlags(fs, &rf, tio.getenv)
	to := fs.String("to", "", "directory to create with the backup (missing or empty)")
	if code, ok := parseToolFlags(t, fs, args, tio); !ok {
		return code
	}
	if rf.target == "" || *to == "" {
		return usageErrorf(t, tio, "--target and --to are both required")
	}
	r, err := newRemote(rf)
	if err != nil {
		return usageErrorf(t, tio, "%v", err)
	}
	start := time.Now()
	files, bytes, err := backup(ctx, r, *to)
	if err != nil {
		return failf(t, tio, "%v", err)
	}
	fmt.Fprintf(tio.stdout, "backup of %s written to %s: %d files, %s, in %v\n",
		r, *to, files, formatBytes(bytes), time.Since(start).Round(time.Millisecond))
	return exitOK
}

// backup streams a checkpoint from r into the new directory dest. It
// returns the files and bytes written.
func backup(ctx context.Context, r *remote, dest string) (int, int64, error) {
	if err := checkNewDir(dest); err != nil {
		return 0, 0, err
	}
	resp, err := r.do(ctx, "POST", "/api/v1/admin/checkpoint", nil, nil, "")
	if isNotImplemented(err) {
		return 0, 0, fmt.Errorf("%w (only a server on the rust engine has files to back up)", err)
	}
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if ct := resp.Header.Get("Content-Type"); ct != api.CheckpointContentType {
		return 0, 0, fmt.Errorf("the server answered %q, not a checkpoint archive (%s)", ct, api.CheckpointContentType)
	}
	parent := filepath.Dir(filepath.Clean(dest))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return 0, 0, fmt.Errorf("creating %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".partial-")
	if err != nil {
		return 0, 0, fmt.Errorf("creating a directory beside %s: %w", dest, err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()
	body := &countingReader{r: resp.Body}
	files, n, err := extractCheckpoint(body, tmp)
	if err != nil {
		return 0, 0, fmt.Errorf("receiving the checkpoint: %w", err)
	}
	if resp.ContentLength >= 0 && body.n != resp.ContentLength {
		return 0, 0, fmt.Errorf("receiving the checkpoint: %d of %d bytes arrived", body.n, resp.ContentLength)
	}
	if err := syncDir(tmp); err != nil {
		return 0, 0, err
	}
	// checkNewDir allowed an empty dest; the rename needs it gone.
	if err := os.Remove(dest); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("replacing the empty %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return 0, 0, fmt.Errorf("moving the backup into place: %w", err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return 0, 0, err
	}
	return files, n, nil
}

// checkNewDir accepts a path that does not exist or is an empty directory.
func checkNewDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: a backup goes into a new or empty directory", dir)
	}
	return nil
}

// extractCheckpoint writes the files of a checkpoint archive into dir,
// each synced. Only plain files with plain names are accepted: an archive
// cannot write outside dir.
func extractCheckpoint(r io.Reader, dir string) (files int, total int64, err error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			// tar.Reader stops at the end-of-archive blocks; a stream cut
			// before them is io.ErrUnexpectedEOF, not io.EOF.
			return files, total, nil
		}
		if err != nil {
			return files, total, err
		}
		if hdr.Typeflag != tar.TypeReg {
			return files, total, fmt.Errorf("the archive holds %q of type %q; a checkpoint has only plain files", hdr.Name, hdr.Typeflag)
		}
		if hdr.Name != filepath.Base(hdr.Name) || strings.HasPrefix(hdr.Name, ".") || strings.ContainsAny(hdr.Name, `/\`) {
			return files, total, fmt.Errorf("the archive holds %q; a checkpoint has only plain file names", hdr.Name)
		}
		n, err := writeSyncedFile(filepath.Join(dir, hdr.Name), tr)
		if err != nil {
			return files, total, err
		}
		if n != hdr.Size {
			return files, total, fmt.Errorf("%s: %d of %d bytes arrived", hdr.Name, n, hdr.Size)
		}
		files++
		total += n
	}
}

// writeSyncedFile creates path (mode 0600: the data is the users') with
// the bytes of r and syncs it.
func writeSyncedFile(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("writing %s: %w", path, err)
	}
	return n, nil
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// formatBytes writes a byte count in binary units, for reports.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
