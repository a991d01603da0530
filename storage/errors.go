package storage

import "errors"

// Sentinel errors returned by every engine. Engines wrap them with detail
// (fmt.Errorf("%w: ...")), so test with errors.Is.
var (
	// ErrNotFound is returned by Get when the key is absent, deleted or expired.
	ErrNotFound = errors.New("key not found")
	// ErrConflict is returned by Transaction.Commit when another writer
	// committed a key the transaction read or wrote after it began.
	ErrConflict = errors.New("transaction conflict")
	// ErrClosed is returned by every call after Close (or before Init).
	ErrClosed = errors.New("storage engine is closed")
	// ErrInvalidKey is returned for an empty key or one longer than MaxKeySize.
	ErrInvalidKey = errors.New("invalid key")
	// ErrValueTooLarge is returned for a value longer than Config.MaxValueSize.
	ErrValueTooLarge = errors.New("value too large")
	// ErrInvalidArgument is returned for other bad input (a bad option, a zero TTL).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrCorruption is returned when stored data fails validation.
	ErrCorruption = errors.New("data corruption")
	// ErrTxnDone is returned by calls on a committed or rolled-back transaction.
	ErrTxnDone = errors.New("transaction already committed or rolled back")
	// ErrNoSpace is returned when a write failed because the disk (or quota)
	// is full. The write was not acknowledged; the engine then refuses
	// writes (ErrWritesStopped) until it is reopened.
	ErrNoSpace = errors.New("no space left on the device")
	// ErrWritesStopped is returned for writes after an earlier write or sync
	// failed: what reached the disk is unknown until recovery runs, so the
	// engine refuses writes until it is reopened. Reads go on.
	ErrWritesStopped = errors.New("writes stopped after an I/O failure; reopen the engine")
	// ErrLocked is returned by Init when another process has the data directory open.
	ErrLocked = errors.New("data directory is locked by another process")
	// ErrInternal is returned when the engine broke one of its own
	// invariants or ran out of an internal resource: a bug or a limit of
	// the engine, not something the caller did. The message says which.
	ErrInternal = errors.New("internal storage error")
	// ErrNotInteger refuses Updater.IncrBy of a value that is not a decimal
	// 64-bit integer (ParseInt); nothing is written. The text is Redis's.
	ErrNotInteger = errors.New("value is not an integer or out of range")
	// ErrIncrOverflow refuses Updater.IncrBy when the sum leaves the 64-bit
	// range; nothing is written. The text is Redis's.
	ErrIncrOverflow = errors.New("increment or decrement would overflow")
	// ErrTooLong refuses Updater.Append when the result would exceed the
	// length it was given; nothing is written. The text is Redis's.
	ErrTooLong = errors.New("string exceeds maximum allowed size (proto-max-bulk-len)")
)
