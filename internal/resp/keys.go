package resp

import (
	"strings"

	"github.com/mantisdb/mantisdb/internal/kv"
)

func cmdDel(x *call) {
	keys := x.cmd.keys(x.args)
	var n int
	err := x.update(keys, func(tx *kv.Tx) (err error) {
		n, err = tx.Del(keys)
		return err
	})
	x.intOrFail(int64(n), err)
}

func cmdExists(x *call) {
	keys := x.cmd.keys(x.args)
	var n int
	err := x.view(func(tx *kv.Tx) (err error) {
		n, err = tx.Exists(keys)
		return err
	})
	x.intOrFail(int64(n), err)
}

func cmdType(x *call) {
	var t string
	err := x.view(func(tx *kv.Tx) (err error) {
		t, err = tx.Type(x.arg(1))
		return err
	})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.simple(t)
}

func cmdRename(x *call)   { x.rename(false) }
func cmdRenameNX(x *call) { x.rename(true) }

func (x *call) rename(nx bool) {
	var done bool
	err := x.update([]string{x.arg(1), x.arg(2)}, func(tx *kv.Tx) (err error) {
		done, err = tx.Rename(x.arg(1), x.arg(2), nx)
		return err
	})
	switch {
	case err != nil:
		x.fail(err)
	case nx:
		x.w.int(boolInt(done))
	default:
		x.w.ok()
	}
}

func cmdCopy(x *call) {
	replace := false
	for i := 3; i < len(x.args); i++ {
		switch opt := strings.ToUpper(x.arg(i)); {
		case opt == "REPLACE":
			replace = true
		case opt == "DB" && i+1 < len(x.args):
			db, ok := x.parseInt64Arg(i + 1)
			if !ok {
				return
			}
			if db != 0 {
				x.w.err(errInvalidDB)
				return
			}
			i++
		default:
			x.w.err(errSyntax)
			return
		}
	}
	var done bool
	err := x.update([]string{x.arg(1), x.arg(2)}, func(tx *kv.Tx) (err error) {
		done, err = tx.Copy(x.arg(1), x.arg(2), replace)
		return err
	})
	x.intOrFail(boolInt(done), err)
}

func cmdKeys(x *call) {
	var keys []string
	err := x.view(func(tx *kv.Tx) (err error) {
		keys, err = tx.Keys(x.ctx(), x.arg(1))
		return err
	})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.bulks(keys)
}

func cmdRandomKey(x *call) {
	var k string
	var ok bool
	err := x.view(func(tx *kv.Tx) (err error) {
		k, ok, err = tx.RandomKey(x.ctx())
		return err
	})
	x.bulkOrNull(k, ok, err)
}
