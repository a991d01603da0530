// Package serverbuild builds the mantisdb server binary once per test
// process, for the tests that run the real server (the end-to-end tests of
// cmd/mantisdb, the crash harness, the soak): a package's tests share one
// build instead of paying for one each.
package serverbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

// Version is what the built binary reports for --version.
const Version = "e2e-version"

// pkg is the server's package; go build finds it from any directory of the
// module, so every test package names it the same way.
const pkg = "github.com/mantisdb/mantisdb/cmd/mantisdb"

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Binary returns the path of the server binary, building it on the first
// call of the process, failing t if the build fails. The binary has the
// engine the calling test binary has: it is built with -tags rust when the
// Rust engine is linked in. It is built without -race even when the tests
// run with it, as make build-rust builds it.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "mantisdb-server-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "mantisdb")
		args := []string{"build", "-o", built.bin, "-ldflags", "-X main.version=" + Version}
		if storage.RustAvailable {
			args = append(args, "-tags", "rust")
		}
		out, err := exec.Command("go", append(args, pkg)...).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("building the server: go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// Remove deletes the binary Binary built, if any. A TestMain calls it
// after m.Run, so no build is left behind in the temporary directory.
func Remove() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}
