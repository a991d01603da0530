package api

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

// checkpointingEngine is a memory engine that checkpoints into fixed
// files (or fails), and counts compactions: the admin routes' contract
// without the Rust engine.
type checkpointingEngine struct {
	storage.StorageEngine
	files      map[string]string
	fail       error
	compacted  int
	lastCkpDir string
}

func (e *checkpointingEngine) Checkpoint(_ context.Context, dir string) error {
	e.lastCkpDir = dir
	if e.fail != nil {
		return e.fail
	}
	for name, data := range e.files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (e *checkpointingEngine) Compact(context.Context) error {
	e.compacted++
	return e.fail
}

func TestAdminRoutesOnAnEngineWithoutFiles(t *testing.T) {
	c := newClient(t, Options{})
	for _, path := range []string{"/api/v1/admin/checkpoint", "/api/v1/admin/compact"} {
		rec := c.do("POST", path, "")
		if rec.Code != http.StatusNotImplemented {
			t.Fatalf("%s on the memory engine: %d %s, want 501", path, rec.Code, rec.Body)
		}
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != codeNotImplemented {
			t.Fatalf("%s: body %s, want code %s", path, rec.Body, codeNotImplemented)
		}
		if rec := c.do("POST", path+"?x=1", ""); rec.Code != http.StatusBadRequest {
			t.Errorf("%s?x=1: %d, want 400", path, rec.Code)
		}
		if rec := c.do("GET", path, ""); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 405", path, rec.Code)
		}
	}
}

func TestAdminRoutesNeedTheToken(t *testing.T) {
	e := &checkpointingEngine{StorageEngine: newEngine(t), files: map[string]string{"a": "b"}}
	c := newClientOver(t, e, Options{AuthToken: "secret"})
	c.token = ""
	for _, path := range []string{"/api/v1/admin/checkpoint", "/api/v1/admin/compact"} {
		if rec := c.do("POST", path, ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, rec.Code)
		}
	}
	if e.compacted != 0 || e.lastCkpDir != "" {
		t.Fatal("an unauthenticated request reached the engine")
	}
}

func TestCheckpointStreamsAnExactArchive(t *testing.T) {
	files := map[string]string{
		"0000000001.seg":  string(bytes.Repeat([]byte{7}, 5000)),
		"0000000001.hint": "hint bytes",
		"0000000002.seg":  "",
	}
	scratch := t.TempDir()
	e := &checkpointingEngine{StorageEngine: newEngine(t), files: files}
	c := newClientOver(t, e, Options{ScratchDir: scratch})
	rec := c.do("POST", "/api/v1/admin/checkpoint", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("checkpoint: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != CheckpointContentType {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("Content-Length %s, body %d bytes", cl, rec.Body.Len())
	}
	tr := tar.NewReader(rec.Body)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != files[hdr.Name] || hdr.Typeflag != tar.TypeReg {
			t.Errorf("%s: %d bytes of type %q, want %d", hdr.Name, len(data), hdr.Typeflag, len(files[hdr.Name]))
		}
		names = append(names, hdr.Name)
	}
	if want := []string{"0000000001.hint", "0000000001.seg", "0000000002.seg"}; !slices.Equal(names, want) {
		t.Errorf("archive holds %q, want %q in name order", names, want)
	}
	if filepath.Dir(e.lastCkpDir) != scratch {
		t.Errorf("checkpoint taken in %s, want a directory in %s", e.lastCkpDir, scratch)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("scratch directory not cleaned up: %v", left)
	}
}

func TestCheckpointFailureIsAnErrorAnswer(t *testing.T) {
	scratch := t.TempDir()
	e := &checkpointingEngine{StorageEngine: newEngine(t), fail: errors.New("disk on fire")}
	c := newClientOver(t, e, Options{ScratchDir: scratch})
	rec := c.do("POST", "/api/v1/admin/checkpoint", "")
	if rec.Code != http.StatusInternalServerError || !bytes.Contains(rec.Body.Bytes(), []byte("disk on fire")) {
		t.Fatalf("failing checkpoint: %d %s, want 500 naming the cause", rec.Code, rec.Body)
	}
	if left, _ := os.ReadDir(scratch); len(left) != 0 {
		t.Errorf("scratch directory not cleaned up: %v", left)
	}
}

func TestCompactRunsOnePass(t *testing.T) {
	e := &checkpointingEngine{StorageEngine: newEngine(t)}
	c := newClientOver(t, e, Options{})
	rec := c.do("POST", "/api/v1/admin/compact", "")
	var res CompactResult
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &res) != nil {
		t.Fatalf("compact: %d %s", rec.Code, rec.Body)
	}
	if e.compacted != 1 {
		t.Fatalf("engine compacted %d times, want 1", e.compacted)
	}
}
