package doclinks

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// skippedDirs are build outputs and tool state: never part of the docs, and
// never a valid link target (a fresh clone does not have them). Other
// hidden directories (.tools/, a virtualenv) are skipped too, but for
// keptHiddenDirs, which hold checked-in files.
var (
	skippedDirs    = []string{".git", "target", "node_modules"}
	keptHiddenDirs = []string{".github", ".ci"}
)

// externalScheme matches a destination with a URL scheme (https:, mailto:).
var externalScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// TestRelativeLinksResolve checks every relative link of every Markdown file
// in the repository: the file or directory it names exists (relative to the
// page, or to the repository root when it starts with '/'), and a #anchor
// names a heading of the target page.
func TestRelativeLinksResolve(t *testing.T) {
	root := repoRoot(t)
	pages := markdownFiles(t, root)
	if len(pages) == 0 {
		t.Fatalf("no Markdown files found under %s", root)
	}
	anchorCache := map[string]map[string]bool{}
	pageAnchors := func(path string) map[string]bool {
		if a, ok := anchorCache[path]; ok {
			return a
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		anchorCache[path] = anchors(string(src))
		return anchorCache[path]
	}
	checked := 0
	for _, page := range pages {
		src, err := os.ReadFile(page)
		if err != nil {
			t.Fatalf("read %s: %v", page, err)
		}
		rel, _ := filepath.Rel(root, page)
		for _, l := range links(string(src)) {
			if l.dest == "" || externalScheme.MatchString(l.dest) || strings.HasPrefix(l.dest, "//") {
				continue
			}
			checked++
			if problem := resolve(root, page, l.dest, pageAnchors); problem != "" {
				t.Errorf("%s:%d: link %q: %s", rel, l.line, l.dest, problem)
			}
		}
	}
	t.Logf("%d relative links in %d Markdown files", checked, len(pages))
}

// resolve says what is wrong with a relative link from page, or "" when it
// resolves.
func resolve(root, page, dest string, pageAnchors func(string) map[string]bool) string {
	pathPart, anchor, _ := strings.Cut(dest, "#")
	if strings.Contains(pathPart, "?") {
		pathPart, _, _ = strings.Cut(pathPart, "?")
	}
	target := page
	if pathPart != "" {
		p, err := url.PathUnescape(pathPart)
		if err != nil {
			return "bad escape: " + err.Error()
		}
		if strings.HasPrefix(p, "/") {
			target = filepath.Join(root, filepath.FromSlash(p))
		} else {
			target = filepath.Join(filepath.Dir(page), filepath.FromSlash(p))
		}
		rel, err := filepath.Rel(root, target)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "points outside the repository"
		}
		for _, part := range strings.Split(rel, string(filepath.Separator)) {
			if slices.Contains(skippedDirs, part) {
				return "points into " + part + "/, which a fresh clone does not have"
			}
		}
		info, err := os.Stat(target)
		if err != nil {
			return "no such file or directory"
		}
		if info.IsDir() {
			if anchor != "" {
				return "anchor on a directory"
			}
			return ""
		}
	}
	if anchor == "" || !strings.HasSuffix(target, ".md") {
		return ""
	}
	a, err := url.PathUnescape(anchor)
	if err != nil {
		return "bad escape: " + err.Error()
	}
	if !pageAnchors(target)[strings.ToLower(a)] {
		return "no heading with anchor #" + a
	}
	return ""
}

// repoRoot is the directory holding go.mod, found upwards from the test's
// working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// markdownFiles lists every *.md file under root outside skippedDirs and
// hidden directories.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (slices.Contains(skippedDirs, name) ||
				strings.HasPrefix(name, ".") && !slices.Contains(keptHiddenDirs, name)) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".md") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}
