package storage

import "fmt"

// MaxKeySize is the longest key any engine accepts, in bytes. Keys are
// binary safe: any bytes, held in a Go string.
const MaxKeySize = 65535

// CheckKey reports whether key is a valid key: 1..MaxKeySize bytes. Its
// error wraps ErrInvalidKey, and its message says what is wrong in words
// a protocol can hand to its client as they are. The engines and the
// protocols that validate a request before running any of it all apply
// this one rule.
func CheckKey(key string) error {
	if len(key) == 0 {
		return &keyError{fmt.Sprintf("key is empty (keys are 1..%d bytes)", MaxKeySize)}
	}
	if len(key) > MaxKeySize {
		return &keyError{fmt.Sprintf("key is %d bytes, over the limit of %d", len(key), MaxKeySize)}
	}
	return nil
}

// keyError is an invalid key: it unwraps to ErrInvalidKey, and its message
// is only what is wrong, without the sentinel's words.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }
func (e *keyError) Unwrap() error { return ErrInvalidKey }
