package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mantisdb/mantisdb/storage"
)

// Error codes of the JSON error body. Each has one HTTP status (codeStatus).
const (
	codeInvalidArgument  = "invalid_argument"
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeConflict         = "conflict"
	codeTooLarge         = "too_large"
	codeTimeout          = "timeout"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable"
	codeNoSpace          = "insufficient_storage"
	codeNotImplemented   = "not_implemented"
)

// codeStatus ties every error code to its HTTP status, so a code never
// travels with a status that contradicts it.
var codeStatus = map[string]int{
	codeInvalidArgument:  http.StatusBadRequest,
	codeUnauthorized:     http.StatusUnauthorized,
	codeNotFound:         http.StatusNotFound,
	codeMethodNotAllowed: http.StatusMethodNotAllowed,
	codeConflict:         http.StatusConflict,
	codeTooLarge:         http.StatusRequestEntityTooLarge,
	codeTimeout:          http.StatusRequestTimeout,
	codeInternal:         http.StatusInternalServerError,
	codeUnavailable:      http.StatusServiceUnavailable,
	codeNoSpace:          http.StatusInsufficientStorage,
	codeNotImplemented:   http.StatusNotImplemented,
}

// apiError is an error the API answers with: an error code and a message
// that says what was wrong with the request.
type apiError struct {
	code string
	msg  string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// status is the HTTP status of e's code.
func (e *apiError) status() int { return codeStatus[e.code] }

func newError(code, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) *apiError {
	return newError(codeInvalidArgument, format, args...)
}

func tooLargef(format string, args ...any) *apiError {
	return newError(codeTooLarge, format, args...)
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// toAPIError maps an error from the engine, a body reader or a handler to
// the answer the client gets. Anything unrecognised is internal.
func toAPIError(err error) *apiError {
	var ae *apiError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case clusterError(err) != nil:
		return clusterError(err)
	case errors.As(err, &tooBig):
		return tooLargef("request body exceeds the limit of %d bytes", tooBig.Limit)
	case errors.Is(err, storage.ErrNotFound):
		return newError(codeNotFound, "%v", err)
	case errors.Is(err, storage.ErrInvalidKey), errors.Is(err, storage.ErrInvalidArgument):
		return invalidf("%v", err)
	case errors.Is(err, storage.ErrValueTooLarge):
		return tooLargef("%v", err)
	case errors.Is(err, storage.ErrConflict):
		return newError(codeConflict, "%v", err)
	case errors.Is(err, storage.ErrClosed):
		return newError(codeUnavailable, "%v", err)
	case errors.Is(err, storage.ErrNoSpace):
		return newError(codeNoSpace, "the write was not stored: %v; free disk space and restart the server", err)
	case errors.Is(err, storage.ErrWritesStopped):
		return newError(codeUnavailable, "%v; restart the server (reads still work)", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return newError(codeUnavailable, "request cancelled: %v", err)
	case errors.Is(err, storage.ErrInternal):
		// Logged by fail (a 500): the operator, not the client, acts on it.
		return newError(codeInternal, "%v", err)
	default:
		return newError(codeInternal, "%v", err)
	}
}

// fail answers r with err as a JSON error. Server-side failures are logged,
// since the client cannot fix them.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if ae.status() >= 500 {
		s.log.ErrorContext(r.Context(), "request failed",
			"method", r.Method, "path", r.URL.EscapedPath(), "err", err)
	}
	writeError(w, ae)
}

func writeError(w http.ResponseWriter, ae *apiError) {
	writeJSON(w, ae.status(), errorBody{Error: errorDetail{Code: ae.code, Message: ae.msg}})
}
