package kv

import (
	"fmt"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// OpKind is what one operation of a batch or of a compare-and-swap branch
// does.
type OpKind int

const (
	// OpGet reads a key.
	OpGet OpKind = iota
	// OpPut sets a key.
	OpPut
	// OpDelete removes a key; removing a missing key succeeds.
	OpDelete
)

// String is the operation's lower-case name: get, put or delete.
func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	default:
		return fmt.Sprintf("OpKind(%d)", int(k))
	}
}

// Op is one operation of a batch or of a compare-and-swap branch. Value
// and TTL belong to puts only; a TTL of 0 means no expiry.
type Op struct {
	Kind  OpKind
	Key   string
	Value string
	TTL   time.Duration
}

// Result is the answer to one Op, in the order of the operations: its kind
// and key, and for a get whether the key was found and, if so, its value.
type Result struct {
	Kind  OpKind
	Key   string
	Found bool
	Value string
}

// Validate reports what is wrong with o as an operation of a batch
// (inTxn false) or of a compare-and-swap branch (inTxn true): an unknown
// kind, a value or TTL on a get or delete, a negative TTL, or a TTL inside
// a compare-and-swap, whose transaction writes without expiry. Keys and
// values are the engine's to check. The error wraps
// storage.ErrInvalidArgument and its message is only what is wrong, for a
// protocol to pass on.
func (o Op) Validate(inTxn bool) error {
	switch o.Kind {
	case OpPut:
		if o.TTL < 0 {
			return invalidf("ttl %v is negative", o.TTL)
		}
		if o.TTL > 0 && inTxn {
			return invalidf("ttl is not supported inside a transaction")
		}
	case OpGet, OpDelete:
		if o.Value != "" {
			return invalidf("value is only allowed on put")
		}
		if o.TTL != 0 {
			return invalidf("ttl is only allowed on put")
		}
	default:
		return invalidf("op kind %d is not get, put or delete", int(o.Kind))
	}
	return nil
}

// validateOps checks every op before any runs, naming the first bad one.
func validateOps(ops []Op, inTxn bool) error {
	for i, o := range ops {
		if err := o.Validate(inTxn); err != nil {
			return &argError{fmt.Sprintf("op %d: %v", i, err)}
		}
	}
	return nil
}

// argError is a bad argument to an operation: it unwraps to
// storage.ErrInvalidArgument, and its message is only what is wrong.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }
func (e *argError) Unwrap() error { return storage.ErrInvalidArgument }

func invalidf(format string, args ...any) error {
	return &argError{fmt.Sprintf(format, args...)}
}
