package api

import (
	"net"
	"net/http"
	"time"

	"github.com/mantisdb/mantisdb/internal/telemetry"
)

// routeFamilies says which command family each data route's requests
// count under in the telemetry. A batch is one write however many
// operations it holds, as it is one atomic request. Routes not listed
// (stats, health, metrics, the dashboard itself) are not operations and
// are left out, so polling the dashboard does not show up in its charts.
var routeFamilies = map[Route]telemetry.Family{
	{"GET", "/api/v1/kv/{key}"}:    telemetry.Read,
	{"PUT", "/api/v1/kv/{key}"}:    telemetry.Write,
	{"POST", "/api/v1/kv/{key}"}:   telemetry.Write,
	{"DELETE", "/api/v1/kv/{key}"}: telemetry.Write,
	{"POST", "/api/v1/kv/batch"}:   telemetry.Write,
	{"GET", "/api/v1/kv"}:          telemetry.Scan,
	{"POST", "/api/v1/txn"}:        telemetry.Txn,
}

// observeFamily times next and records it under rt's command family, if
// rt has one. It sits inside authentication, so refused requests are not
// counted as operations.
func (s *Server) observeFamily(rt Route, next http.Handler) http.Handler {
	family, ok := routeFamilies[rt]
	if !ok {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		s.httpOps.ObserveSince(family, start)
	})
}

// ConnState counts the HTTP connections open, for the dashboard. Set it as
// the http.Server's ConnState.
func (s *Server) ConnState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.httpOps.ConnOpened()
	case http.StateClosed, http.StateHijacked:
		s.httpOps.ConnClosed()
	}
}
