package api

import (
	"net/http"
	"strings"

	"github.com/mantisdb/mantisdb/internal/api/ui"
)

// uiPolicy is the Content-Security-Policy of the dashboard's files: the
// page may load scripts, styles and data from this server only, so it
// makes no request elsewhere even if a dependency tried to.
const uiPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// handleUI serves the dashboard's page (/ui, /ui/) and its built files
// (/ui/app.js). They are public: they hold no data, and a browser must
// load the page before it can ask for the token that every data call
// (GET /api/v1/dashboard, the key routes) then carries.
func (s *Server) handleUI(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	asset, ok := ui.Lookup(r.PathValue("asset"))
	if !ok {
		notFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", uiPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Revalidate every time: the names carry no version, and a 304 costs
	// little next to serving a stale page after an upgrade.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", asset.ETag)
	if strings.Contains(r.Header.Get("If-None-Match"), asset.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", asset.ContentType)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(asset.Data)
	}
}
