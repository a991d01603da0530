package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// requireToken answers 401 unless the request carries the configured bearer
// token. With no token configured it returns next unchanged.
func (s *Server) requireToken(next http.Handler) http.Handler {
	if s.opts.AuthToken == "" {
		return next
	}
	// Comparing digests keeps the comparison constant-time in the token's
	// length too, which subtle.ConstantTimeCompare alone does not.
	want := sha256.Sum256([]byte(s.opts.AuthToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mantisdb"`)
			writeError(w, newError(codeUnauthorized, "missing bearer token (send Authorization: Bearer <token>)"))
			return
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mantisdb", error="invalid_token"`)
			writeError(w, newError(codeUnauthorized, "invalid bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic in next into a 500 JSON answer and a log line
// with the stack, so one bad request cannot take the server down. It uses
// the statusRecorder an outer middleware (metrics) already wraps the
// answer in, rather than adding one per request.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := w.(*statusRecorder)
		if !ok {
			rec = &statusRecorder{ResponseWriter: w}
		}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.ErrorContext(r.Context(), "panic serving request",
				"method", r.Method, "path", r.URL.EscapedPath(),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				writeError(w, newError(codeInternal, "internal error while serving the request"))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// limitBody caps every request body at limit bytes; a handler reading past
// it gets an *http.MaxBytesError, answered as 413.
func limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// logRequests logs one debug line per request. With debug off it costs
// one level check.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		log.DebugContext(r.Context(), "request",
			"method", r.Method, "path", r.URL.EscapedPath(), "status", rec.statusCode(),
			"bytes", rec.bytes, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

// statusRecorder remembers the status and size of an answer. One wraps
// each request's answer (see metrics.instrument); the middlewares that
// need the status share it.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (rec *statusRecorder) WriteHeader(code int) {
	if !rec.wroteHeader {
		rec.status, rec.wroteHeader = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *statusRecorder) Write(p []byte) (int, error) {
	if !rec.wroteHeader {
		rec.status, rec.wroteHeader = http.StatusOK, true
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer (write
// deadlines, flushing) through the recorder.
func (rec *statusRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

func (rec *statusRecorder) statusCode() int {
	if !rec.wroteHeader {
		return http.StatusOK
	}
	return rec.status
}
