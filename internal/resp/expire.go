package resp

import (
	"math"
	"strings"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
)

func cmdExpire(x *call)    { x.expire(time.Second, false) }
func cmdPExpire(x *call)   { x.expire(time.Millisecond, false) }
func cmdExpireAt(x *call)  { x.expire(time.Second, true) }
func cmdPExpireAt(x *call) { x.expire(time.Millisecond, true) }

// expire runs the EXPIRE family: the amount in unit, relative or absolute,
// with Redis 7.0's NX/XX/GT/LT rules and error texts.
func (x *call) expire(unit time.Duration, absolute bool) {
	var nx, xx, gt, lt bool
	for _, a := range x.args[3:] {
		switch opt := strings.ToUpper(string(a)); opt {
		case "NX":
			nx = true
		case "XX":
			xx = true
		case "GT":
			gt = true
		case "LT":
			lt = true
		default:
			x.w.err("ERR Unsupported option " + string(a))
			return
		}
	}
	if nx && (xx || gt || lt) {
		x.w.err("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if gt && lt {
		x.w.err("ERR GT and LT options at the same time are not compatible")
		return
	}
	n, ok := x.parseInt64Arg(2)
	if !ok {
		return
	}
	now := time.Now()
	invalid := "ERR invalid expire time in '" + x.cmd.name + "' command"
	ms := n
	if unit == time.Second {
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			x.w.err(invalid)
			return
		}
		ms = n * 1000
	}
	if !absolute && ms > math.MaxInt64-now.UnixMilli() {
		x.w.err(invalid)
		return
	}
	cond := kv.ExpireAlways
	for _, f := range []struct {
		on   bool
		cond kv.ExpireCondition
	}{{nx, kv.ExpireIfNone}, {xx, kv.ExpireIfSet}, {gt, kv.ExpireIfLater}, {lt, kv.ExpireIfEarlier}} {
		if f.on {
			cond |= f.cond
		}
	}
	var done bool
	err := x.update([]string{x.arg(1)}, func(tx *kv.Tx) (err error) {
		// A relative time counts from the transaction's clock, so that
		// EXPIRE k 0 inside EXEC is in the past for the reads after it.
		at := ms
		if !absolute {
			at += tx.Now().UnixMilli()
		}
		done, err = tx.Expire(x.arg(1), time.UnixMilli(at), cond)
		return err
	})
	x.intOrFail(boolInt(done), err)
}

func cmdTTL(x *call)  { x.ttl(false) }
func cmdPTTL(x *call) { x.ttl(true) }

func (x *call) ttl(ms bool) {
	var n int64
	err := x.view(func(tx *kv.Tx) (err error) {
		n, err = tx.RemainingTTL(x.arg(1), ms)
		return err
	})
	x.intOrFail(n, err)
}

func cmdExpireTime(x *call)  { x.expireTime(false) }
func cmdPExpireTime(x *call) { x.expireTime(true) }

func (x *call) expireTime(ms bool) {
	var at time.Time
	var ok bool
	err := x.view(func(tx *kv.Tx) (err error) {
		at, ok, err = tx.Expiry(x.arg(1))
		return err
	})
	switch {
	case err != nil:
		x.fail(err)
	case !ok:
		x.w.int(-2)
	case at.IsZero():
		x.w.int(-1)
	case ms:
		x.w.int(at.UnixMilli())
	default:
		// Rounded to the nearest second, as Redis does.
		x.w.int((at.UnixMilli() + 500) / 1000)
	}
}

func cmdPersist(x *call) {
	var done bool
	err := x.update([]string{x.arg(1)}, func(tx *kv.Tx) (err error) {
		done, err = tx.Persist(x.arg(1))
		return err
	})
	x.intOrFail(boolInt(done), err)
}
