// Package ui holds the dashboard served at /ui. Its sources are in src/,
// built by build.mjs with the esbuild and uPlot versions package-lock.json
// pins; the built files in dist/ are checked in and embedded here, so the
// server builds without Node. bundle.sha256 records the hashes of the
// sources and of the built files, and a test fails when either side has
// changed without the other (run `make ui` after editing src/).
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
)

//go:embed dist
var dist embed.FS

// Asset is one built file, ready to serve.
type Asset struct {
	// Data is the file's content.
	Data []byte
	// ContentType is its media type, with a charset for text.
	ContentType string
	// ETag is a strong entity tag: the content's SHA-256, quoted.
	ETag string
}

// assets holds every built file by name ("index.html", "app.js"), read
// once: the files never change while the binary runs.
var assets = loadAssets()

func loadAssets() map[string]Asset {
	out := make(map[string]Asset)
	files, err := fs.ReadDir(dist, "dist")
	if err != nil {
		panic("ui: the embedded dist directory is unreadable: " + err.Error())
	}
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		data, err := dist.ReadFile("dist/" + f.Name())
		if err != nil {
			panic("ui: reading embedded " + f.Name() + ": " + err.Error())
		}
		sum := sha256.Sum256(data)
		ctype := mime.TypeByExtension(path.Ext(f.Name()))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		out[f.Name()] = Asset{Data: data, ContentType: ctype, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	return out
}

// Lookup returns the built file called name; "" is the page itself.
func Lookup(name string) (Asset, bool) {
	if name == "" {
		name = "index.html"
	}
	a, ok := assets[name]
	return a, ok
}

// Names lists every built file's name.
func Names() []string {
	names := make([]string, 0, len(assets))
	for name := range assets {
		names = append(names, name)
	}
	return names
}
