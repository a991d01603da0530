package kv

import (
	"errors"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

func TestOpValidate(t *testing.T) {
	cases := []struct {
		op    Op
		inTxn bool
		msg   string // "" when valid
	}{
		{Op{Kind: OpPut, Key: "k", Value: "v", TTL: time.Second}, false, ""},
		{Op{Kind: OpPut, Key: "k", Value: "v"}, true, ""},
		{Op{Kind: OpGet, Key: "k"}, true, ""},
		{Op{Kind: OpDelete, Key: "k"}, false, ""},
		{Op{Kind: OpPut, Key: "k", TTL: time.Second}, true, "ttl is not supported inside a transaction"},
		{Op{Kind: OpPut, Key: "k", TTL: -time.Second}, false, "ttl -1s is negative"},
		{Op{Kind: OpGet, Key: "k", Value: "v"}, false, "value is only allowed on put"},
		{Op{Kind: OpDelete, Key: "k", TTL: time.Second}, false, "ttl is only allowed on put"},
		{Op{Kind: OpKind(7), Key: "k"}, false, "op kind 7 is not get, put or delete"},
	}
	for _, c := range cases {
		err := c.op.Validate(c.inTxn)
		if c.msg == "" {
			if err != nil {
				t.Errorf("%+v (inTxn %v): %v", c.op, c.inTxn, err)
			}
			continue
		}
		if !errors.Is(err, storage.ErrInvalidArgument) || err.Error() != c.msg {
			t.Errorf("%+v (inTxn %v) = %v; want %q wrapping ErrInvalidArgument", c.op, c.inTxn, err, c.msg)
		}
	}
}

func TestOpKindString(t *testing.T) {
	for k, want := range map[OpKind]string{OpGet: "get", OpPut: "put", OpDelete: "delete", OpKind(9): "OpKind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("OpKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
