package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/internal/dumpfile"
	"github.com/mantisdb/mantisdb/storage"
)

// runCmd runs the binary's entry point in process with args, standard
// input stdin, and the environment env.
func runCmd(t *testing.T, stdin string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runTool(args, toolIO{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

// startAPI serves engine's HTTP API on loopback until the test ends.
func startAPI(t *testing.T, engine storage.StorageEngine, opts api.Options) string {
	t.Helper()
	srv := httptest.NewServer(api.New(engine, opts).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func newMemoryEngine(t *testing.T) storage.StorageEngine {
	t.Helper()
	e := storage.NewMemoryEngine(storage.DefaultConfig())
	if err := e.Init(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// writeDump writes entries as a dump file and returns its path.
func writeDump(t *testing.T, entries []dumpfile.Entry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dump.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := dumpfile.NewWriter(f, dumpfile.Header{Source: "test", Expiries: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestToolHelpAndUsage(t *testing.T) {
	code, out, _ := runCmd(t, "", nil, "help")
	if code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	for _, tl := range tools() {
		if !strings.Contains(out, "  "+tl.name+" ") {
			t.Errorf("help does not list %s:\n%s", tl.name, out)
		}
		code, out, _ := runCmd(t, "", nil, tl.name, "--help")
		if code != exitOK || !strings.Contains(out, "Usage: mantisdb "+tl.name) || !strings.Contains(out, "Exit codes:") {
			t.Errorf("%s --help: exit %d\n%s", tl.name, code, out)
		}
		if code, _, errOut := runCmd(t, "", nil, tl.name, "--no-such-flag"); code != exitUsage || !strings.Contains(errOut, "no-such-flag") {
			t.Errorf("%s --no-such-flag: exit %d, stderr %q; want 2 naming the flag", tl.name, code, errOut)
		}
		if code, _, _ := runCmd(t, "", nil, tl.name); code != exitUsage {
			t.Errorf("%s without its required flags: exit %d, want 2", tl.name, code)
		}
	}
	if code, _, _ := runCmd(t, "", nil, "help", "nope"); code != exitUsage {
		t.Errorf("help nope: exit %d, want 2", code)
	}
	cases := [][]string{
		{"dump", "--data-dir", "a", "--target", "http://127.0.0.1:1"},
		{"load", "--target", "ftp://host"},
		{"backup", "--target", "http://127.0.0.1:1"},
		{"compact", "--target", "http://127.0.0.1:1", "stray"},
		{"load", "--data-dir", "x", "--batch-keys", "0"},
	}
	for _, args := range cases {
		if code, _, _ := runCmd(t, "", nil, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestToolsReportAServerWithoutFiles(t *testing.T) {
	url := startAPI(t, newMemoryEngine(t), api.Options{})
	code, _, errOut := runCmd(t, "", nil, "compact", "--target", url)
	if code != exitFailed || !strings.Contains(errOut, "501 not_implemented") {
		t.Errorf("compact on the memory engine: exit %d, stderr %q", code, errOut)
	}
	to := filepath.Join(t.TempDir(), "backup")
	code, _, errOut = runCmd(t, "", nil, "backup", "--target", url, "--to", to)
	if code != exitFailed || !strings.Contains(errOut, "501 not_implemented") {
		t.Errorf("backup on the memory engine: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("a failed backup left %s behind", to)
	}
}

func TestToolsUseTheToken(t *testing.T) {
	e := newMemoryEngine(t)
	url := startAPI(t, e, api.Options{AuthToken: "s3cret"})
	dump := writeDump(t, []dumpfile.Entry{{Key: "k", Value: "v"}})
	code, _, errOut := runCmd(t, "", nil, "load", "--target", url, "--in", dump)
	if code != exitFailed || !strings.Contains(errOut, "401") {
		t.Fatalf("load without the token: exit %d, stderr %q", code, errOut)
	}
	env := map[string]string{"MANTISDB_AUTH_TOKEN": "s3cret"}
	code, _, errOut = runCmd(t, "", env, "load", "--target", url, "--in", dump)
	if code != exitOK {
		t.Fatalf("load with the token from the environment: exit %d, stderr %q", code, errOut)
	}
	for _, name := range []string{"load", "dump", "backup", "compact"} {
		if _, out, _ := runCmd(t, "", env, name, "--help"); strings.Contains(out, "s3cret") {
			t.Errorf("%s --help prints the token from the environment:\n%s", name, out)
		}
	}
	if v, err := e.Get(context.Background(), "k"); err != nil || v != "v" {
		t.Fatalf("k = %q, %v", v, err)
	}
}

// TestLoadIntoAServer loads binary keys, expiring and expired ones into a
// running server through the batch route, in several atomic batches.
func TestLoadIntoAServer(t *testing.T) {
	e := newMemoryEngine(t)
	url := startAPI(t, e, api.Options{})
	entries := []dumpfile.Entry{
		{Key: "\x00\xff", Value: "\xfe binary"},
		{Key: "expired", Value: "x", ExpiresAt: time.Now().Add(-time.Minute)},
		{Key: "expiring", Value: "soon", ExpiresAt: time.Now().Add(time.Hour)},
	}
	for i := range 25 {
		entries = append(entries, dumpfile.Entry{Key: "k" + string(rune('a'+i)), Value: strings.Repeat("v", i)})
	}
	dump := writeDump(t, entries)
	code, _, errOut := runCmd(t, "", nil, "load", "--target", url, "--in", dump, "--batch-keys", "4", "--progress", "always")
	if code != exitOK {
		t.Fatalf("load: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(errOut, "loaded 27 keys in 7 batches") || !strings.Contains(errOut, "1 already expired") {
		t.Errorf("load report: %q", errOut)
	}
	if !strings.Contains(errOut, "100%") {
		t.Errorf("no progress bar at 100%% with --progress always: %q", errOut)
	}
	ctx := context.Background()
	for _, en := range entries {
		v, err := e.Get(ctx, en.Key)
		if en.Key == "expired" {
			if err == nil {
				t.Errorf("the expired key was loaded")
			}
			continue
		}
		if err != nil || v != en.Value {
			t.Errorf("%q = %q, %v; want %q", en.Key, v, err, en.Value)
		}
	}
	// The target now holds keys: a second load is refused unless --merge.
	code, _, errOut = runCmd(t, "", nil, "load", "--target", url, "--in", dump)
	if code != exitFailed || !strings.Contains(errOut, "--merge") {
		t.Errorf("load into a non-empty server: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "", nil, "load", "--target", url, "--in", dump, "--merge"); code != exitOK {
		t.Errorf("load --merge: exit %d, stderr %q", code, errOut)
	}
}

// TestLoadStopsAtDamage feeds a dump cut short on standard input: the
// load fails naming the problem, after writing the whole batches before it.
func TestLoadStopsAtDamage(t *testing.T) {
	var entries []dumpfile.Entry
	for i := range 10 {
		entries = append(entries, dumpfile.Entry{Key: string(rune('a' + i)), Value: "v"})
	}
	data, err := os.ReadFile(writeDump(t, entries))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	cut := string(bytes.Join(lines[:len(lines)-2], nil)) // no trailer
	e := newMemoryEngine(t)
	url := startAPI(t, e, api.Options{})
	code, _, errOut := runCmd(t, cut, nil, "load", "--target", url, "--batch-keys", "3")
	if code != exitFailed || !strings.Contains(errOut, "without its trailer") {
		t.Fatalf("load of a cut dump: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(errOut, "9 keys were written before the error") {
		t.Errorf("stderr %q does not say how much was written", errOut)
	}
}

// TestBackupRefusesACutOrHostileArchive serves archives that end early
// or name a path outside the directory: backup fails, and leaves neither
// the target nor its temporary directory behind.
func TestBackupRefusesACutOrHostileArchive(t *testing.T) {
	archive := func(name string, data []byte) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o600})
		_, _ = tw.Write(data)
		_ = tw.Close()
		return buf.Bytes()
	}
	whole := archive("0000000001.seg", bytes.Repeat([]byte{1}, 4096))
	cases := map[string][]byte{
		"cut":    whole[:len(whole)-1500],
		"escape": archive("../evil", []byte("x")),
		"hidden": archive(".profile", []byte("x")),
		"subdir": archive("a/b", []byte("x")),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", api.CheckpointContentType)
				// The cut archive promises the whole one's length; the
				// others are whole, so only their names are wrong.
				length := len(body)
				if name == "cut" {
					length = len(whole)
				}
				w.Header().Set("Content-Length", strconv.Itoa(length))
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			parent := t.TempDir()
			code, _, errOut := runCmd(t, "", nil, "backup", "--target", srv.URL, "--to", filepath.Join(parent, "b"))
			if code != exitFailed || (name != "cut" && !strings.Contains(errOut, "plain file names")) {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Fatalf("a failed backup left %v in %s", left, parent)
			}
		})
	}
	nonEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(t, "", nil, "backup", "--target", "http://127.0.0.1:1", "--to", nonEmpty)
	if code != exitFailed || !strings.Contains(errOut, "not empty") {
		t.Fatalf("backup into a non-empty directory: exit %d, stderr %q", code, errOut)
	}
}

// TestMainDispatchesSubcommands goes through the program's entry point:
// a first argument naming a subcommand runs it, anything else is the
// server's flags.
func TestMainDispatchesSubcommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"stats", "--help"}, func(string) string { return "" }, &out, &errb); code != exitOK ||
		!strings.Contains(out.String(), "Usage: mantisdb stats") {
		t.Fatalf("run stats --help: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"--help"}, func(string) string { return "" }, &out, &errb); code != exitOK ||
		!strings.Contains(out.String(), "mantisdb <command> [flags]") || !strings.Contains(out.String(), "--data-dir") {
		t.Fatalf("run --help: exit %d\n%s", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"chekc"}, func(string) string { return "" }, &out, &errb); code != exitUsage ||
		!strings.Contains(errb.String(), `unknown command "chekc"`) {
		t.Fatalf("a mistyped subcommand: exit %d, stderr %q", code, errb.String())
	}
}

// TestDumpAndLoadKeepAbsoluteExpiries dumps an engine that keeps
// expiries (the memory engine) and loads the dump into another: every
// key keeps its moment of expiry to the millisecond, not its time left.
func TestDumpAndLoadKeepAbsoluteExpiries(t *testing.T) {
	ctx := context.Background()
	src := newMemoryEngine(t)
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := src.Write(ctx, []storage.BatchOp{
		{Kind: storage.OpPut, Key: "forever", Value: "v"},
		{Kind: storage.OpPut, Key: "hour", Value: "v", ExpireAt: at},
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if n, err := dumpEngine(ctx, src, "test", "", &buf); err != nil || n != 2 {
		t.Fatalf("dump: %d keys, %v", n, err)
	}
	if !strings.Contains(buf.String(), `"expiries":true`) || !strings.Contains(buf.String(), fmt.Sprintf(`"expires_at_ms":%d`, at.UnixMilli())) {
		t.Fatalf("the dump lacks the absolute expiry:\n%s", buf.String())
	}
	// Loaded a little later, the key expires at the same moment.
	time.Sleep(20 * time.Millisecond)
	dst := newMemoryEngine(t)
	if _, err := load(ctx, &buf, &engineSink{engine: dst}, loadOptions{batchKeys: 10, batchBytes: 1 << 20}, nil); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]time.Time{"forever": {}, "hour": at} {
		_, meta, err := dst.GetWithMeta(ctx, key)
		if err != nil || !meta.ExpiresAt.Equal(want) {
			t.Errorf("%s: expires %v (%v), want %v", key, meta.ExpiresAt, err, want)
		}
	}
}
