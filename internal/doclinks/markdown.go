package doclinks

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// link is one link destination found in a Markdown file.
type link struct {
	line int    // 1-based line of the destination
	dest string // as written, without angle brackets or title
}

var (
	// fenceLine opens or closes a fenced code block (CommonMark allows up to
	// three spaces of indentation).
	fenceLine = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	// inlineLink matches [text](dest "title") and ![alt](dest); link text may
	// wrap across lines, which is why links are matched on the whole file.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*(<[^>\n]*>|[^\s)]*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	// refDefinition matches a reference-style definition: [name]: dest.
	refDefinition = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*(<[^>\n]*>|\S+)`)
	// htmlLink matches href and src attributes of inline HTML.
	htmlLink = regexp.MustCompile(`\b(?:href|src)="([^"]*)"`)
	// htmlAnchor matches an explicit anchor target in inline HTML.
	htmlAnchor = regexp.MustCompile(`<a\s[^>]*\b(?:name|id)="([^"]*)"`)
	// atxHeading matches "# Title" through "###### Title".
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$`)
	// headingLink reduces a link inside a heading to its text.
	headingLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// blankCode returns the file with every fenced code block and inline code
// span replaced by spaces, newlines kept, so that offsets and line numbers
// stay those of the original and nothing inside code is read as a link.
func blankCode(src string) string {
	return blankCodeSpans(blankFences(src))
}

// blankFences blanks fenced code blocks only.
func blankFences(src string) string {
	lines := strings.SplitAfter(src, "\n")
	var out strings.Builder
	out.Grow(len(src))
	fence := ""
	for _, l := range lines {
		if m := fenceLine.FindStringSubmatch(l); m != nil {
			marker := m[1]
			switch {
			case fence == "":
				fence = marker
				out.WriteString(blank(l))
				continue
			case marker[0] == fence[0] && len(marker) >= len(fence) &&
				strings.TrimSpace(l) == marker:
				fence = ""
				out.WriteString(blank(l))
				continue
			}
		}
		if fence != "" {
			out.WriteString(blank(l))
			continue
		}
		out.WriteString(l)
	}
	return out.String()
}

// blankCodeSpans blanks `code` spans: a run of n backticks up to the next
// run of exactly n backticks. An unmatched run is literal text.
func blankCodeSpans(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		n := run(b, i)
		end := -1
		for j := i + n; j < len(b); {
			if b[j] != '`' {
				j++
				continue
			}
			m := run(b, j)
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 {
			i += n
			continue
		}
		for k := i; k < end; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		i = end
	}
	return string(b)
}

// run is the length of the run of backticks starting at b[i].
func run(b []byte, i int) int {
	n := 0
	for i+n < len(b) && b[i+n] == '`' {
		n++
	}
	return n
}

// blank replaces every byte of l but a newline with a space.
func blank(l string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, l)
}

// links returns every link destination of a Markdown file, outside code.
func links(src string) []link {
	text := blankCode(src)
	var out []link
	for _, re := range []*regexp.Regexp{inlineLink, refDefinition, htmlLink} {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			dest := strings.TrimSuffix(strings.TrimPrefix(text[m[2]:m[3]], "<"), ">")
			out = append(out, link{line: 1 + strings.Count(text[:m[2]], "\n"), dest: dest})
		}
	}
	return out
}

// anchors returns the anchors a renderer in GitHub's style gives the
// headings of a Markdown file, plus explicit <a name|id> targets.
func anchors(src string) map[string]bool {
	text := blankFences(src)
	seen := map[string]int{}
	out := map[string]bool{}
	for l := range strings.SplitSeq(text, "\n") {
		if m := atxHeading.FindStringSubmatch(l); m != nil {
			slug := slugify(headingText(m[1]))
			if n := seen[slug]; n > 0 {
				out[slug+"-"+strconv.Itoa(n)] = true
			} else {
				out[slug] = true
			}
			seen[slug]++
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(l, -1) {
			out[m[1]] = true
		}
	}
	return out
}

// headingText is a heading as rendered: links reduced to their text and
// code spans to their content.
func headingText(h string) string {
	return strings.ReplaceAll(headingLink.ReplaceAllString(h, "$1"), "`", "")
}

// slugify turns heading text into its anchor: lower case, every character
// but letters, digits, '_', '-' and spaces dropped, spaces made hyphens.
func slugify(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
