package api

import (
	"context"
	"net/http"
	"runtime"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// healthTimeout bounds the engine check behind /health, so a stuck engine
// answers 503 instead of hanging the prober.
const healthTimeout = 2 * time.Second

// versionAnswer is the answer of /api/v1/version.
type versionAnswer struct {
	Version       string `json:"version"`
	GoVersion     string `json:"go_version"`
	Engine        string `json:"engine"`
	RustAvailable bool   `json:"rust_available"`
}

// healthAnswer is the answer of a healthy /health.
type healthAnswer struct {
	Status string `json:"status"`
	Engine string `json:"engine"`
}

// handleStats answers the engine's counters (storage.Stats).
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.engine.Stats(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, versionAnswer{
		Version:       s.opts.Version,
		GoVersion:     runtime.Version(),
		Engine:        s.engine.Name(),
		RustAvailable: storage.RustAvailable,
	})
}

// handleHealth answers 200 while the engine's health check passes, else 503.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := s.engine.HealthCheck(ctx); err != nil {
		writeError(w, newError(codeUnavailable, "engine %s is unhealthy: %v", s.engine.Name(), err))
		return
	}
	writeJSON(w, http.StatusOK, healthAnswer{Status: "ok", Engine: s.engine.Name()})
}

// handleMetrics answers the Prometheus text exposition.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.handler.ServeHTTP(w, r)
}
