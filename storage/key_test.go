package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"k", "\x00", strings.Repeat("\xff", MaxKeySize)} {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey of a %d-byte key: %v", len(k), err)
		}
	}
	for _, c := range []struct{ key, msg string }{
		{"", "key is empty (keys are 1..65535 bytes)"},
		{strings.Repeat("k", MaxKeySize+1), "key is 65536 bytes, over the limit of 65535"},
	} {
		err := CheckKey(c.key)
		if !errors.Is(err, ErrInvalidKey) || err.Error() != c.msg {
			t.Errorf("CheckKey of a %d-byte key = %v; want %q wrapping ErrInvalidKey", len(c.key), err, c.msg)
		}
	}
}
