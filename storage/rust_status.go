//go:build rust

package storage

/*
#include "mantisdb.h"
*/
import "C"

import "fmt"

// rustError is an engine failure: the sentinel for errors.Is and the core's message.
type rustError struct {
	sentinel error
	msg      string
}

func (e *rustError) Error() string { return e.msg }
func (e *rustError) Unwrap() error { return e.sentinel }

// statusSentinels gives the sentinel each failure status wraps; any other
// status (MANTIS_IO) is reported with its number. A panic inside the core
// is an internal fault like any other broken invariant.
var statusSentinels = map[C.MantisStatus]error{
	C.MANTIS_NOT_FOUND:        ErrNotFound,
	C.MANTIS_CONFLICT:         ErrConflict,
	C.MANTIS_CLOSED:           ErrClosed,
	C.MANTIS_INVALID_KEY:      ErrInvalidKey,
	C.MANTIS_VALUE_TOO_LARGE:  ErrValueTooLarge,
	C.MANTIS_CORRUPTION:       ErrCorruption,
	C.MANTIS_NO_SPACE:         ErrNoSpace,
	C.MANTIS_POISONED:         ErrWritesStopped,
	C.MANTIS_LOCKED:           ErrLocked,
	C.MANTIS_INVALID_ARGUMENT: ErrInvalidArgument,
	C.MANTIS_NULL_PARAMETER:   ErrInvalidArgument,
	C.MANTIS_BUFFER_TOO_SMALL: ErrInvalidArgument,
	C.MANTIS_INTERNAL:         ErrInternal,
	C.MANTIS_PANIC:            ErrInternal,
}

// statusError turns a status and the error object of the same call into an
// error, freeing the object.
func statusError(st C.MantisStatus, cerr *C.MantisError) error {
	msg := ""
	if cerr != nil {
		msg = C.GoStringN(cerr.message, C.int(cerr.message_len))
		C.mantis_error_free(cerr)
	}
	sentinel, ok := statusSentinels[st]
	if !ok {
		sentinel = fmt.Errorf("mantisdb status %d", int(st))
	}
	if msg == "" {
		msg = sentinel.Error()
	}
	return &rustError{sentinel: sentinel, msg: msg}
}
