package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"time"

	"github.com/mantisdb/mantisdb/internal/dumpfile"
	"github.com/mantisdb/mantisdb/storage"
)

func loadTool() tool {
	return tool{
		name:     "load",
		synopsis: "(--data-dir D | --target URL) [--in FILE] [--batch-keys N] [--batch-bytes SIZE] [--merge]",
		summary:  "write the keys of a dump into a database, in atomic batches",
		about: `Reads a dump (written by dump) and writes its keys in atomic batches: each
batch is one commit, all of it or none of it visible, also after a crash.
Into --data-dir (not open in a server) through the engine, with each
key's absolute expiry (the time left where the engine takes no absolute
expiry); into a running server at --target through
POST /api/v1/kv/batch, whose TTLs are whole seconds, so an expiry is
rounded up to the next second there. Keys already expired are skipped.
The whole dump is checked as it is read (order, count, checksum); a
damaged or cut dump stops the load with an error naming the line, after
the batches before it were written. The target must hold no keys, so the
result is a copy of the dumped database; --merge writes into a non-empty
one (keys in the dump replace theirs, others stay). A progress bar shows
on a terminal.`,
		run: runLoad,
	}
}

// loadSink is where load writes: a data directory or a server.
type loadSink interface {
	// empty reports whether the database holds no key.
	empty(ctx context.Context) (bool, error)
	// write commits entries as one atomic batch.
	write(ctx context.Context, entries []dumpfile.Entry) error
	// close makes everything written durable and releases the sink.
	close() error
}

func runLoad(ctx context.Context, fs *flag.FlagSet, args []string, tio toolIO) int {
	t := loadTool()
	var rf remoteFlags
	addRemoteFlags(fs, &rf, tio.getenv)
	dataDir := fs.String("data-dir", "", "data directory to load into (created if missing; not open in a server)")
	in := fs.String("in", "-", "dump file to read, or - for standard input")
	batchKeys := fs.Int("batch-keys", 1000, "most keys in one atomic batch")
	var batchBytes int64 = 4 << 20
	fs.Var(&sizeValue{&batchBytes, 1, 1 << 30}, "batch-bytes", "most key and value bytes in one batch (a larger entry goes alone)")
	merge := fs.Bool("merge", false, "load into a database that already holds keys")
	var progress = "auto"
	fs.Var(&choiceValue{&progress, []string{"auto", "always", "never"}}, "progress", "progress bar on standard error: auto (on a terminal), always or never")
	if code, ok := parseToolFlags(t, fs, args, tio); !ok {
		return code
	}
	if (*dataDir == "") == (rf.target == "") {
		return usageErrorf(t, tio, "give exactly one of --data-dir and --target")
	}
	if *batchKeys < 1 || *batchKeys > 100000 {
		return usageErrorf(t, tio, "--batch-keys %d is outside 1..100000", *batchKeys)
	}
	input, size, closeInput, err := openInput(*in, tio.stdin)
	if err != nil {
		return failf(t, tio, "%v", err)
	}
	defer closeInput()
	var sink loadSink
	if *dataDir != "" {
		engine, err := openDataDir(*dataDir, true)
		if err != nil {
			return failf(t, tio, "%v", err)
		}
		sink = &engineSink{engine: engine}
	} else {
		r, err := newRemote(rf)
		if err != nil {
			return usageErrorf(t, tio, "%v", err)
		}
		sink = &remoteSink{r: r}
	}
	bar := newProgressBar(tio.stderr, progress, size)
	start := time.Now()
	res, err := load(ctx, input, sink, loadOptions{batchKeys: *batchKeys, batchBytes: batchBytes, merge: *merge}, bar)
	bar.finish()
	if cerr := sink.close(); err == nil {
		err = cerr
	}
	if !res.expiries {
		fmt.Fprintln(tio.stderr, "note: the dump carries no expiries (its source could not tell them); loaded keys never expire")
	}
	if err != nil {
		return failf(t, tio, "%v (%d keys were written before the error)", err, res.written)
	}
	fmt.Fprintf(tio.stderr, "loaded %d keys in %d batches in %v; %d already expired, skipped\n",
		res.written, res.batches, time.Since(start).Round(time.Millisecond), res.expired)
	return exitOK
}

// openInput opens the dump: a file (with its size, for the progress
// bar) or standard input.
func openInput(path string, stdin io.Reader) (io.Reader, int64, func(), error) {
	if path == "-" {
		return stdin, -1, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, func() { _ = f.Close() }, nil
}

type loadOptions struct {
	batchKeys  int
	batchBytes int64
	merge      bool
}

type loadResult struct {
	written, expired, batches uint64
	expiries                  bool
}

// load copies the dump in r into sink in atomic batches.
func load(ctx context.Context, r io.Reader, sink loadSink, opts loadOptions, bar *progressBar) (loadResult, error) {
	res := loadResult{expiries: true}
	dr, err := dumpfile.NewReader(r)
	if err != nil {
		return res, err
	}
	res.expiries = dr.Header().Expiries
	if !opts.merge {
		empty, err := sink.empty(ctx)
		if err != nil {
			return res, err
		}
		if !empty {
			return res, errors.New("the target database already holds keys; load into an empty one, or pass --merge")
		}
	}
	var batch []dumpfile.Entry
	var bytes int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := sink.write(ctx, batch); err != nil {
			return err
		}
		res.written += uint64(len(batch))
		res.batches++
		bar.update(res.written, dr.BytesRead())
		batch, bytes = batch[:0], 0
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		e, err := dr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, err
		}
		if !e.ExpiresAt.IsZero() && time.Until(e.ExpiresAt) < time.Millisecond {
			res.expired++
			continue
		}
		size := int64(len(e.Key) + len(e.Value))
		if len(batch) > 0 && (len(batch) == opts.batchKeys || bytes+size > opts.batchBytes) {
			if err := flush(); err != nil {
				return res, err
			}
		}
		batch = append(batch, e)
		bytes += size
	}
	return res, flush()
}

// engineSink loads into an engine opened on a data directory.
type engineSink struct {
	engine storage.StorageEngine
	ops    []storage.BatchOp
}

func (s *engineSink) empty(ctx context.Context) (bool, error) {
	it, err := s.engine.NewIterator(ctx, "")
	if err != nil {
		return false, err
	}
	defer func() { _ = it.Close() }()
	found := it.Next()
	return !found, it.Error()
}

func (s *engineSink) write(ctx context.Context, entries []dumpfile.Entry) error {
	return s.engine.Write(ctx, s.batch(entries))
}

// batch turns entries into puts, each with its absolute expiry.
func (s *engineSink) batch(entries []dumpfile.Entry) []storage.BatchOp {
	s.ops = s.ops[:0]
	for _, e := range entries {
		s.ops = append(s.ops, storage.BatchOp{Kind: storage.OpPut, Key: e.Key, Value: e.Value, ExpireAt: e.ExpiresAt})
	}
	return s.ops
}

func (s *engineSink) close() error { return closeEngine(s.engine) }

// remoteSink loads into a running server through its batch route.
type remoteSink struct {
	r *remote
}

// batchOp and batchBody are the JSON of POST /api/v1/kv/batch.
type batchOp struct {
	Op            string `json:"op"`
	Key           string `json:"key"`
	KeyEncoding   string `json:"key_encoding,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
	TTL           int64  `json:"ttl,omitempty"`
}

type batchBody struct {
	Operations []batchOp `json:"operations"`
	Atomic     bool      `json:"atomic"`
}

func (s *remoteSink) empty(ctx context.Context) (bool, error) {
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := s.r.doJSON(ctx, "GET", "/api/v1/kv", url.Values{"limit": {"1"}}, nil, &page); err != nil {
		return false, err
	}
	return len(page.Items) == 0, nil
}

func (s *remoteSink) write(ctx context.Context, entries []dumpfile.Entry) error {
	body := batchBody{Atomic: true, Operations: make([]batchOp, 0, len(entries))}
	for _, e := range entries {
		op := batchOp{Op: "put"}
		op.Key, op.KeyEncoding = encodeJSONBytes(e.Key)
		op.Value, op.ValueEncoding = encodeJSONBytes(e.Value)
		if !e.ExpiresAt.IsZero() {
			// The API's TTL is whole seconds: round up, so a key never
			// expires before the dumped moment.
			op.TTL = max(int64(math.Ceil(time.Until(e.ExpiresAt).Seconds())), 1)
		}
		body.Operations = append(body.Operations, op)
	}
	var answer json.RawMessage
	return s.r.doJSON(ctx, "POST", "/api/v1/kv/batch", nil, body, &answer)
}

func (s *remoteSink) close() error { return nil }
