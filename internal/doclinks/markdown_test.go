package doclinks

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestLinksSkipCodeAndFollowWrappedText(t *testing.T) {
	src := "See [the\nquick start](guide/quick-start.md) and ![img](a.png \"t\").\n" +
		"Not `[code](x.md)` nor ``[a `b`](y.md)``.\n" +
		"```sh\n[fenced](z.md)\n```\n" +
		"[ref]: <docs/ref.md>\n" +
		"<a href=\"h.md#top\">h</a> [web](https://example.com)\n"
	got := links(src)
	want := []link{
		{2, "guide/quick-start.md"},
		{2, "a.png"},
		{7, "docs/ref.md"},
		{8, "h.md#top"},
		{8, "https://example.com"},
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %+v in %+v", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d links %+v, want %d", len(got), got, len(want))
	}
}

func TestAnchorsFollowGitHubSlugs(t *testing.T) {
	src := "# On-disk format\n" +
		"## Segment header (`SegmentHeader`)\n" +
		"## 6. In a container\n" +
		"## Runs\n### Runs\n" +
		"## See [the guide](x.md)\n" +
		"```\n# not a heading\n```\n" +
		"<a name=\"frame-crc\"></a>\n"
	got := anchors(src)
	for _, want := range []string{"on-disk-format", "segment-header-segmentheader",
		"6-in-a-container", "runs", "runs-1", "see-the-guide", "frame-crc"} {
		if !got[want] {
			t.Errorf("anchor %q missing from %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a line in a code block was taken for a heading")
	}
}

func TestResolveReportsMissingTargets(t *testing.T) {
	root := t.TempDir()
	page := filepath.Join(root, "docs", "a.md")
	for path, body := range map[string]string{
		page:                                  "# A\n## Part two\n",
		filepath.Join(root, "README.md"):      "# Top\n",
		filepath.Join(root, "target", "x.md"): "# Built\n",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pageAnchors := func(p string) map[string]bool {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return anchors(string(src))
	}
	for dest, ok := range map[string]bool{
		"#part-two":           true,
		"#part-three":         false,
		"../README.md#top":    true,
		"../README.md#bottom": false,
		"/README.md":          true,
		"./":                  true,
		"missing.md":          false,
		"../../outside.md":    false,
		"../target/x.md":      false,
		"a.md?plain=1#a":      true,
	} {
		problem := resolve(root, page, dest, pageAnchors)
		if (problem == "") != ok {
			t.Errorf("resolve(%q) = %q, want ok=%v", dest, problem, ok)
		}
	}
}
