package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// manifestFile records the SHA-256 of every source and built file, in
// sha256sum's format.
const manifestFile = "bundle.sha256"

// bundleFiles lists what the bundle is built from and what it is: the npm
// manifest and lock file, the build script, everything in src/ and dist/.
func bundleFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"package.json", "package-lock.json", "build.mjs"}
	for _, dir := range []string{"src", "dist"} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, filepath.ToSlash(p))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(files)
	return files
}

func manifest(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, name := range bundleFiles(t) {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), name)
	}
	return b.String()
}

// TestBundleIsFresh fails when a source of the dashboard (src/, the npm
// lock file, the build script) or the built bundle in dist/ changed since
// bundle.sha256 was written by `make ui`: the checked-in bundle would not
// be what the sources build. It needs no Node. `make ui-check` goes
// further and rebuilds from the lock file to compare bytes.
func TestBundleIsFresh(t *testing.T) {
	got := manifest(t)
	if os.Getenv("MANTIS_WRITE_UI_MANIFEST") == "1" {
		if err := os.WriteFile(manifestFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatalf("%v: run `make ui`", err)
	}
	if got != string(want) {
		t.Fatalf("the dashboard bundle is stale: its sources or dist/ differ from %s; run `make ui` and commit dist/ and %s\n--- recorded\n%s--- now\n%s",
			manifestFile, manifestFile, want, got)
	}
}

// TestBundleMakesNoExternalRequests reads the built files for a URL with
// a scheme: the dashboard must work on a machine without internet and
// leak nothing to third parties, so it loads nothing (scripts, styles,
// fonts, images) from anywhere but the server itself.
func TestBundleMakesNoExternalRequests(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/"')\s]|@import|url\(\s*["']?(https?:|//)`)
	// XML namespaces name a vocabulary and are never fetched.
	namespace := regexp.MustCompile(`http://www\.w3\.org/[0-9]{4}/[a-z]+`)
	if len(Names()) < 3 {
		t.Fatalf("dist has %q, want index.html, app.js and app.css", Names())
	}
	for _, name := range Names() {
		a, _ := Lookup(name)
		text := namespace.ReplaceAllString(string(a.Data), "")
		if m := external.FindString(text); m != "" {
			t.Errorf("%s refers outside the server: %q", name, m)
		}
	}
	page, ok := Lookup("")
	if !ok || !strings.Contains(string(page.Data), `src="/ui/app.js"`) || !strings.Contains(string(page.Data), `href="/ui/app.css"`) {
		t.Fatal("index.html does not load /ui/app.js and /ui/app.css")
	}
}
