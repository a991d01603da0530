// Package doclinks keeps the repository's Markdown honest: its test reads
// every Markdown file in the tree and fails on a relative link whose file,
// directory or heading anchor does not exist, naming the file, the line and
// the link. Moving or renaming a page therefore fails `go test ./...` until
// every page that points at it is updated.
package doclinks
