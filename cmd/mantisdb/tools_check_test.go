//go:build rust

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// checkedDir is a closed data directory of 3,000 keys over several
// segments, a quarter of them overwritten, one expiring.
func checkedDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	e := openRust(t, dir)
	fill(t, e, 3000)
	ctx := context.Background()
	for i := 0; i < 3000; i += 4 {
		if err := e.Put(ctx, testKey(i), testValue(i)+"!"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.PutWithTTL(ctx, "ttl", "x", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// dirDigest is every file name in dir with a hash of its bytes.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %x", e.Name(), sha256.Sum256(data)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// segmentRecordOffsets lists the offset of every record of a segment
// file, walking the frames (length at bytes 4..8 of each, 8 bytes of
// header before the payload) after the 32-byte segment header.
func segmentRecordOffsets(t *testing.T, data []byte) []int {
	t.Helper()
	var out []int
	for at := 32; at+8 <= len(data); {
		n := int(uint32(data[at+4]) | uint32(data[at+5])<<8 | uint32(data[at+6])<<16 | uint32(data[at+7])<<24)
		out = append(out, at)
		at += 8 + n
	}
	return out
}

func TestCheckCleanDirectoryChangesNothing(t *testing.T) {
	dir := checkedDir(t)
	if err := os.Remove(filepath.Join(dir, "LOCK")); err != nil {
		t.Fatal(err)
	}
	before := dirDigest(t, dir)
	code, out, errOut := runCmd(t, "", nil, "check", "--data-dir", dir)
	if code != exitOK || !strings.Contains(out, "OK: no damage") {
		t.Fatalf("check: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if after := dirDigest(t, dir); after != before {
		t.Fatalf("check changed the directory:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); !os.IsNotExist(err) {
		t.Fatal("check created the lock file")
	}
}

// TestCheckNamesAFlippedByte flips one byte inside the second record of
// a segment with later records: check exits 1 naming that file and the
// record's offset; --repair then salvages the directory, which opens again.
func TestCheckNamesAFlippedByte(t *testing.T) {
	dir := checkedDir(t)
	var seg string
	var data []byte
	var offsets []int
	names, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, name := range names {
		d, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if o := segmentRecordOffsets(t, d); len(o) >= 3 {
			seg, data, offsets = name, d, o
			break
		}
	}
	if seg == "" {
		t.Fatalf("no segment of %q has three records", names)
	}
	at := offsets[1]
	data[at+20] ^= 0x01
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirDigest(t, dir)
	code, out, _ := runCmd(t, "", nil, "check", "--data-dir", dir)
	if code != exitFailed || !strings.Contains(out, "DAMAGED") {
		t.Fatalf("check of a flipped byte: exit %d, stdout:\n%s", code, out)
	}
	if !strings.Contains(out, fmt.Sprintf("the first is in %s at offset %d", seg, at)) {
		t.Fatalf("check does not name %s at offset %d:\n%s", seg, at, out)
	}
	if dirDigest(t, dir) != before {
		t.Fatal("check changed a damaged directory")
	}
	code, js, _ := runCmd(t, "", nil, "check", "--data-dir", dir, "--json")
	var rep storage.DirReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil || code != exitFailed {
		t.Fatalf("check --json: exit %d, %v\n%s", code, err, js)
	}
	if d := rep.Damage[0]; d.File != seg || d.Offset != uint64(at) || !strings.Contains(d.Reason, "checksum") {
		t.Fatalf("first damage %+v, want %s at %d", d, seg, at)
	}
	// The engine refuses the directory, naming the same place.
	cfg := storage.DefaultConfig()
	e, _ := storage.NewStorageEngine("rust", cfg)
	if err := e.Init(dir); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", at)) {
		t.Fatalf("open of the damaged directory: %v", err)
	}

	code, out, errOut := runCmd(t, "", nil, "check", "--data-dir", dir, "--repair")
	if code != exitOK || !strings.Contains(out, "after the repair") || !strings.HasSuffix(strings.TrimSpace(out), "OK: no damage") {
		t.Fatalf("check --repair: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, fmt.Sprintf("drops %s from offset %d to its end (%d bytes)", seg, at, len(data)-at)) {
		t.Errorf("--repair does not say what it drops:\n%s", out)
	}
	var keysAfter, readable int
	if _, err := fmt.Sscanf(out[strings.Index(out, "after the repair"):], "after the repair: %d keys (the check before it could read %d)", &keysAfter, &readable); err != nil {
		t.Fatalf("reading the repair's key counts: %v\n%s", err, out)
	}
	// Repair keeps exactly what the check could read before the damage.
	if keysAfter == 0 || keysAfter != readable {
		t.Fatalf("%d keys after the repair, %d readable before it", keysAfter, readable)
	}
	if got := len(contents(t, openRust(t, dir))); got != keysAfter {
		t.Fatalf("the repaired directory opens with %d keys, check counted %d", got, keysAfter)
	}
}

func TestStatsFigures(t *testing.T) {
	dir := checkedDir(t)
	code, out, errOut := runCmd(t, "", nil, "stats", "--data-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("stats: exit %d, %s", code, errOut)
	}
	var rep storage.DirReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Keys != 3001 || rep.KeysWithExpiry != 1 || rep.DeadBytes == 0 || rep.LiveBytes == 0 ||
		rep.LastSeq == 0 || rep.IndexEstimateBytes == 0 || len(rep.Damage) != 0 {
		t.Fatalf("stats figures: %+v", rep)
	}
	code, out, _ = runCmd(t, "", nil, "stats", "--data-dir", dir, "--segments")
	for _, want := range []string{"3001 live (1 with an expiry)", "dead bytes", "sequence", "hint files", "index estimate", "0000000001.seg"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats output lacks %q:\n%s", want, out)
		}
	}
	if code != exitOK || bytes.Count([]byte(out), []byte(".seg")) < 2 {
		t.Errorf("stats --segments: exit %d\n%s", code, out)
	}
	code, _, errOut = runCmd(t, "", nil, "stats", "--data-dir", filepath.Join(dir, "missing"))
	if code != exitFailed || errOut == "" {
		t.Errorf("stats of a missing directory: exit %d, stderr %q", code, errOut)
	}
}
