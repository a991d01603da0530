package api

import (
	"fmt"
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
