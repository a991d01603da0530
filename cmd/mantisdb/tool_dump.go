package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mantisdb/mantisdb/internal/dumpfile"
	"github.com/mantisdb/mantisdb/storage"
)

func dumpTool() tool {
	return tool{
		name:     "dump",
		synopsis: "(--data-dir D | --target URL) [--out FILE] [--prefix P]",
		summary:  "write every live key, in order, as a portable JSON-lines dump",
		about: `Writes every live key and value, in byte order of the keys, as JSON lines
(format in docs/operations/tools.md): binary-safe (base64 where a key or
value is not UTF-8), with each key's absolute expiry where the engine can
tell it (the Rust engine cannot yet), and a trailer that counts the keys
and checksums them, so load refuses a dump that was cut short or altered. The dump holds one moment:
from --data-dir it reads one snapshot (the directory must not be open in
a server); from --target it first takes a checkpoint of the running
server (as backup does) into a temporary directory and dumps that.`,
		run: runDump,
	}
}

func runDump(ctx context.Context, fs *flag.FlagSet, args []string, tio toolIO) int {
	t := dumpTool()
	var rf remoteFlags
	addRemoteFlags(fs, &rf, tio.getenv)
	dataDir := fs.String("data-dir", "", "data directory to dump (not open in a server)")
	out := fs.String("out", "-", "file to write (replaced once complete), or - for standard output")
	prefix := fs.String("prefix", "", "dump only the keys starting with this")
	if code, ok := parseToolFlags(t, fs, args, tio); !ok {
		return code
	}
	if (*dataDir == "") == (rf.target == "") {
		return usageErrorf(t, tio, "give exactly one of --data-dir and --target")
	}
	start := time.Now()
	var keys uint64
	var source string
	var err error
	write := func(w io.Writer) error {
		if *dataDir != "" {
			source = *dataDir
			keys, err = dumpDataDir(ctx, *dataDir, *prefix, w)
			return err
		}
		r, rerr := newRemote(rf)
		if rerr != nil {
			return rerr
		}
		source = r.String()
		keys, err = dumpRemote(ctx, r, *prefix, w)
		return err
	}
	if err := writeOutput(*out, tio.stdout, write); err != nil {
		return failf(t, tio, "%v", err)
	}
	fmt.Fprintf(tio.stderr, "dumped %d keys from %s in %v\n", keys, source, time.Since(start).Round(time.Millisecond))
	return exitOK
}

// writeOutput runs write on standard output ("-") or on a new file that
// replaces path only once it is complete and synced.
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-")
	if err != nil {
		return fmt.Errorf("creating the output: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // fails once renamed, as it should
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("moving the dump into place: %w", err)
	}
	return nil
}

// dumpDataDir dumps the database in dir.
func dumpDataDir(ctx context.Context, dir, prefix string, w io.Writer) (uint64, error) {
	engine, err := openDataDir(dir, false)
	if err != nil {
		return 0, err
	}
	keys, err := dumpEngine(ctx, engine, dir, prefix, w)
	return keys, errors.Join(err, engine.Close())
}

// dumpRemote dumps a checkpoint of the server r: one moment of it, with
// what the engine knows of expiries, which the scan API does not carry.
func dumpRemote(ctx context.Context, r *remote, prefix string, w io.Writer) (uint64, error) {
	if !storage.RustAvailable {
		return 0, errors.New("dump --target reads the server's checkpoint with the Rust engine; use the mantisdb-rust build (make build-rust)")
	}
	tmp, err := os.MkdirTemp("", "mantisdb-dump-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	dir := filepath.Join(tmp, "checkpoint")
	if _, _, err := backup(ctx, r, dir); err != nil {
		return 0, err
	}
	engine, err := openDataDir(dir, false)
	if err != nil {
		return 0, err
	}
	keys, err := dumpEngine(ctx, engine, r.String(), prefix, w)
	return keys, errors.Join(err, engine.Close())
}

// dumpEngine writes every live key of engine starting with prefix, read
// at one point in time, as a dump.
func dumpEngine(ctx context.Context, engine storage.StorageEngine, source, prefix string, w io.Writer) (uint64, error) {
	expiry := expiryReader(engine)
	dw, err := dumpfile.NewWriter(w, dumpfile.Header{CreatedAt: time.Now().UTC(), Source: source, Expiries: true})
	if err != nil {
		return 0, err
	}
	it, err := engine.NewIterator(ctx, prefix)
	if err != nil {
		return 0, err
	}
	defer func() { _ = it.Close() }()
	for it.Next() {
		if err := ctx.Err(); err != nil {
			return dw.Keys(), err
		}
		// The writer keeps the key (to check the order of the next one),
		// and the iterator's own dies at its next step.
		e := dumpfile.Entry{Key: strings.Clone(it.Key()), Value: it.Value()}
		if expiry != nil {
			exp, err := expiry(ctx, e.Key)
			if errors.Is(err, storage.ErrNotFound) {
				continue // expired between the scan and this read
			}
			if err != nil {
				return dw.Keys(), err
			}
			e.ExpiresAt = exp
		}
		if err := dw.Write(e); err != nil {
			return dw.Keys(), err
		}
	}
	if err := it.Error(); err != nil {
		return dw.Keys(), fmt.Errorf("reading the database: %w", err)
	}
	return dw.Keys(), dw.Close()
}
