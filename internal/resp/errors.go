package resp

import (
	"errors"
	"strings"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// Argument errors, in Redis's words.
const (
	errSyntax      = "ERR syntax error"
	errNotInteger  = "ERR value is not an integer or out of range"
	errNotFloat    = "ERR value is not a valid float"
	errInvalidDB   = "ERR DB index is out of range"
	errNestedMulti = "ERR MULTI calls can not be nested"
)

// errorReply renders an error from internal/kv or the engine as a RESP
// error. kv's semantic errors carry Redis's texts; engine errors keep their
// own words, under ERR.
func errorReply(err error) string {
	switch {
	case errors.Is(err, kv.ErrUnknownCursor):
		return "ERR " + err.Error()
	case errors.Is(err, storage.ErrClosed):
		return "ERR the server is shutting down: " + err.Error()
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, ' '); i > 0 && strings.ToUpper(msg[:i]) == msg[:i] && strings.HasSuffix(msg[:i], "ERR") {
		return msg
	}
	return "ERR " + msg
}
