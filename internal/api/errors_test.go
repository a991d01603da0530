package api

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

// TestEngineErrorsMapToStatuses: each engine failure a client can meet has
// the status and code the API documents, and the message says what to do.
func TestEngineErrorsMapToStatuses(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		hint   string
	}{
		{fmt.Errorf("%w: k", storage.ErrNotFound), http.StatusNotFound, codeNotFound, "not found"},
		{fmt.Errorf("%w: empty key", storage.ErrInvalidKey), http.StatusBadRequest, codeInvalidArgument, "invalid key"},
		{fmt.Errorf("%w: 9 bytes", storage.ErrValueTooLarge), http.StatusRequestEntityTooLarge, codeTooLarge, "too large"},
		{fmt.Errorf("%w: k", storage.ErrConflict), http.StatusConflict, codeConflict, "conflict"},
		{storage.ErrClosed, http.StatusServiceUnavailable, codeUnavailable, "closed"},
		{fmt.Errorf("%w: appending to the log: os error 28", storage.ErrNoSpace), http.StatusInsufficientStorage, codeNoSpace, "free disk space"},
		{fmt.Errorf("%w: fdatasync failed", storage.ErrWritesStopped), http.StatusServiceUnavailable, codeUnavailable, "restart the server"},
		{fmt.Errorf("%w: bad frame", storage.ErrCorruption), http.StatusInternalServerError, codeInternal, "corruption"},
		{fmt.Errorf("%w: active segment 7 is not open", storage.ErrInternal), http.StatusInternalServerError, codeInternal, "active segment 7"},
	}
	for _, c := range cases {
		ae := toAPIError(c.err)
		if ae.status() != c.status || ae.code != c.code {
			t.Errorf("%v: got %d %s, want %d %s", c.err, ae.status(), ae.code, c.status, c.code)
		}
		if !strings.Contains(ae.msg, c.hint) {
			t.Errorf("%v: message %q does not say %q", c.err, ae.msg, c.hint)
		}
	}
}

// internalFaultEngine fails every Get (and GetWithMeta, which the key
// read uses) with an internal fault of the engine.
type internalFaultEngine struct{ storage.StorageEngine }

func (internalFaultEngine) Get(context.Context, string) (string, error) {
	return "", fmt.Errorf("%w: active segment 7 is not open", storage.ErrInternal)
}

func (e internalFaultEngine) GetWithMeta(ctx context.Context, key string) (string, storage.KeyMeta, error) {
	_, err := e.Get(ctx, key)
	return "", storage.KeyMeta{}, err
}

// TestInternalFaultIsALogged500: a fault of the engine itself is the
// server's problem, not the request's: a 500 with code "internal" that
// says what happened, and a log line for the operator.
func TestInternalFaultIsALogged500(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c := newClientOver(t, internalFaultEngine{newEngine(t)}, Options{Logger: log})
	rec := c.do("GET", "/api/v1/kv/k", "")
	wantError(t, rec, http.StatusInternalServerError, codeInternal)
	if !strings.Contains(rec.Body.String(), "active segment 7 is not open") {
		t.Errorf("the answer does not say what happened: %s", rec.Body.String())
	}
	if !strings.Contains(logs.String(), "request failed") || !strings.Contains(logs.String(), "active segment 7") {
		t.Fatalf("the internal fault was not logged: %s", logs.String())
	}
}
