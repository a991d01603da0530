//go:build rust

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/storage"
)

// openRust opens the Rust engine on dir with small segments, so a few
// thousand writes span several files, closed at the end of t unless the
// test closes it first.
func openRust(t *testing.T, dir string) storage.StorageEngine {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.DataDir = dir
	cfg.SegmentSize = 256 << 10
	cfg.Sync = storage.SyncNever
	e, err := storage.NewStorageEngine("rust", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Init(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// testKey and testValue make n distinct keys, some not UTF-8, with values
// of varied length, some binary and some empty.
func testKey(i int) string {
	if i%7 == 0 {
		return fmt.Sprintf("bin\xff%08d\x00", i)
	}
	return fmt.Sprintf("key:%08d", i)
}

func testValue(i int) string {
	switch i % 5 {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("\x00\xfe%d", i)
	default:
		return strings.Repeat(string(rune('a'+i%26)), i%300)
	}
}

// fill writes keys [0, n) in atomic batches of 1,000.
func fill(t *testing.T, e storage.StorageEngine, n int) {
	t.Helper()
	ctx := context.Background()
	var ops []storage.BatchOp
	for i := range n {
		ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: testKey(i), Value: testValue(i)})
		if len(ops) == 1000 || i == n-1 {
			if err := e.Write(ctx, ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

// contents reads every key and value of e in order.
func contents(t *testing.T, e storage.StorageEngine) [][2]string {
	t.Helper()
	it, err := e.NewIterator(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	var out [][2]string
	for it.Next() {
		out = append(out, [2]string{strings.Clone(it.Key()), strings.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameContents(t *testing.T, got, want [][2]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// TestDumpLoadRoundTrip dumps a data directory of 100,000 keys (binary
// keys and values among them; MANTISDB_ROUNDTRIP_KEYS sets another count,
// `make roundtrip-1m` runs 1,000,000) and loads the dump into a new one:
// the two databases hold the same keys and values in the same order.
func TestDumpLoadRoundTrip(t *testing.T) {
	n := 100_000
	if v := os.Getenv("MANTISDB_ROUNDTRIP_KEYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 || n%1000 != 0 {
			t.Fatalf("MANTISDB_ROUNDTRIP_KEYS=%q: want a multiple of 1000", v)
		}
	}
	src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	e := openRust(t, src)
	fill(t, e, n)
	want := contents(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "dump.jsonl")
	start := time.Now()
	code, _, errOut := runCmd(t, "", nil, "dump", "--data-dir", src, "--out", dump)
	if code != exitOK || !strings.Contains(errOut, fmt.Sprintf("dumped %d keys", n)) {
		t.Fatalf("dump: exit %d, stderr %q", code, errOut)
	}
	dumped := time.Since(start)
	start = time.Now()
	code, _, errOut = runCmd(t, "", nil, "load", "--data-dir", dst, "--in", dump)
	if code != exitOK || !strings.Contains(errOut, fmt.Sprintf("loaded %d keys in %d batches", n, n/1000)) {
		t.Fatalf("load: exit %d, stderr %q", code, errOut)
	}
	t.Logf("%d keys: dump %v, load %v", n, dumped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	loaded := openRust(t, dst)
	sameContents(t, contents(t, loaded), want)
	if err := loaded.Close(); err != nil {
		t.Fatal(err)
	}
	// A second load into the now full directory is refused.
	if code, _, errOut := runCmd(t, "", nil, "load", "--data-dir", dst, "--in", dump); code != exitFailed || !strings.Contains(errOut, "already holds keys") {
		t.Errorf("load into a non-empty directory: exit %d, stderr %q", code, errOut)
	}
}

func TestDumpRefusesADirectoryInUseOrMissing(t *testing.T) {
	dir := t.TempDir()
	openRust(t, dir)
	code, _, errOut := runCmd(t, "", nil, "dump", "--data-dir", dir)
	if code != exitFailed || !strings.Contains(errOut, "running server") {
		t.Errorf("dump of an open directory: exit %d, stderr %q", code, errOut)
	}
	missing := filepath.Join(t.TempDir(), "typo")
	code, _, errOut = runCmd(t, "", nil, "dump", "--data-dir", missing)
	if code != exitFailed || !strings.Contains(errOut, "no database at") {
		t.Errorf("dump of a missing directory: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("dump created %s", missing)
	}
}

// TestBackupIsOneMoment backs up a server while a writer commits rounds
// of ten keys in one atomic batch each: the backup opens as a database
// holding every key written before it began and, of the rounds, exactly
// one whole round, never a mix. A dump through the server is the same.
func TestBackupIsOneMoment(t *testing.T) {
	e := openRust(t, filepath.Join(t.TempDir(), "live"))
	fill(t, e, 5000)
	url := startAPI(t, e, api.Options{ScratchDir: t.TempDir(), AuthToken: "tok"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var rounds atomic.Int64
	wg.Go(func() {
		for r := 0; ctx.Err() == nil && r < 100_000; r++ {
			var ops []storage.BatchOp
			for k := range 10 {
				ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: fmt.Sprintf("round:%d", k), Value: fmt.Sprint(r)})
			}
			if err := e.Write(ctx, ops); err != nil {
				return
			}
			rounds.Add(1)
		}
	})
	for rounds.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	env := map[string]string{"MANTISDB_AUTH_TOKEN": "tok"}
	to := filepath.Join(t.TempDir(), "backup")
	code, out, errOut := runCmd(t, "", env, "backup", "--target", url, "--to", to)
	dump := filepath.Join(t.TempDir(), "dump.jsonl")
	dcode, _, derrOut := runCmd(t, "", env, "dump", "--target", url, "--out", dump)
	cancel()
	wg.Wait()
	if code != exitOK || !strings.Contains(out, "backup of") {
		t.Fatalf("backup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if dcode != exitOK {
		t.Fatalf("dump --target: exit %d, stderr %q", dcode, derrOut)
	}
	for _, dir := range []string{to, loadInto(t, dump)} {
		got := contents(t, openRust(t, dir))
		base, round := 0, map[string]bool{}
		for _, kv := range got {
			if strings.HasPrefix(kv[0], "round:") {
				round[kv[1]] = true
			} else {
				base++
			}
		}
		if base != 5000 || len(round) != 1 {
			t.Errorf("%s: %d base keys (want 5000) and round values %v (want one)", dir, base, round)
		}
	}
}

// loadInto loads a dump file into a new data directory and returns it.
func loadInto(t *testing.T, dump string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "loaded")
	if code, _, errOut := runCmd(t, "", nil, "load", "--data-dir", dir, "--in", dump); code != exitOK {
		t.Fatalf("load: exit %d, stderr %q", code, errOut)
	}
	return dir
}

func TestCompactReclaimsDeadSpace(t *testing.T) {
	e := openRust(t, t.TempDir())
	fill(t, e, 3000)
	// Rewrite a quarter of the keys: every segment keeps a dead fraction
	// below the background compaction's threshold (0.5), so the dead bytes
	// wait for the requested pass.
	var ops []storage.BatchOp
	for i := 0; i < 3000; i += 4 {
		ops = append(ops, storage.BatchOp{Kind: storage.OpPut, Key: testKey(i), Value: testValue(i)})
	}
	if err := e.Write(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	if err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	url := startAPI(t, e, api.Options{})
	code, out, errOut := runCmd(t, "", nil, "compact", "--target", url, "--json")
	if code != exitOK {
		t.Fatalf("compact: exit %d, stderr %q", code, errOut)
	}
	var res api.CompactResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("compact --json printed %q: %v", out, err)
	}
	if res.DeadBytesBefore == 0 || res.DeadBytesAfter >= res.DeadBytesBefore/2 {
		t.Errorf("dead bytes %d -> %d: compaction reclaimed too little", res.DeadBytesBefore, res.DeadBytesAfter)
	}
	sameContents(t, contents(t, e), func() [][2]string {
		var want [][2]string
		for i := range 3000 {
			want = append(want, [2]string{testKey(i), testValue(i)})
		}
		slices.SortFunc(want, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		return want
	}())
}
