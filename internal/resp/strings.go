package resp

import (
	"math"

	"strings"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
)

func cmdGet(x *call) {
	if x.tx == nil && x.batch == nil {
		// The common case on its own, without a view's Tx: the value is
		// read straight into the reply.
		if err := x.w.bulkFrom(func(dst []byte) ([]byte, bool, error) {
			return x.srv.store.AppendValue(x.ctx(), dst, x.transientArg(1))
		}); err != nil {
			x.fail(err)
		}
		return
	}
	var v string
	var ok bool
	err := x.view(func(tx *kv.Tx) (err error) {
		v, ok, err = tx.Get(x.arg(1))
		return err
	})
	x.bulkOrNull(v, ok, err)
}

// bulkOrNull writes a value, nil, or the error.
func (x *call) bulkOrNull(v string, ok bool, err error) {
	switch {
	case err != nil:
		x.fail(err)
	case ok:
		x.w.bulk(v)
	default:
		x.w.null()
	}
}

// expiryOption is a parsed EX/PX/EXAT/PXAT argument.
type expiryOption struct {
	unit     time.Duration // time.Second or time.Millisecond
	absolute bool
	raw      string
}

// resolve turns the option into an absolute time, or Redis's error for
// command (lower case, as in "invalid expire time in 'set' command").
func (o expiryOption) resolve(now time.Time, command string) (time.Time, string) {
	n, ok := kv.ParseInt(o.raw)
	if !ok {
		return time.Time{}, errNotInteger
	}
	invalid := "ERR invalid expire time in '" + command + "' command"
	if n <= 0 || (o.unit == time.Second && n > math.MaxInt64/1000) {
		return time.Time{}, invalid
	}
	ms := n
	if o.unit == time.Second {
		ms = n * 1000
	}
	if !o.absolute {
		if ms > math.MaxInt64-now.UnixMilli() {
			return time.Time{}, invalid
		}
		ms += now.UnixMilli()
	}
	return time.UnixMilli(ms), ""
}

// parseSetOptions reads SET's options (args after key and value) the way
// Redis 7.0 does: conflicting options are a syntax error, a repeated one
// is allowed, and the expiry is checked after the options parse.
func parseSetOptions(args [][]byte, now time.Time, getex bool) (opts kv.SetOptions, change kv.ExpiryChange, exp *expiryOption, errText string) {
	var nx, xx, get, keep, persist bool
	command := "set"
	if getex {
		command = "getex"
	}
	for i := 0; i < len(args); i++ {
		opt := strings.ToUpper(string(args[i]))
		hasNext := i+1 < len(args)
		expiryLocked := keep || persist
		switch {
		case opt == "NX" && !xx && !getex:
			nx = true
		case opt == "XX" && !nx && !getex:
			xx = true
		case opt == "GET" && !getex:
			get = true
		case opt == "KEEPTTL" && !getex && !persist && exp == nil:
			keep = true
		case opt == "PERSIST" && getex && exp == nil && !keep:
			persist = true
		case (opt == "EX" || opt == "PX" || opt == "EXAT" || opt == "PXAT") && !expiryLocked && hasNext &&
			(exp == nil || exp.kind() == opt):
			e := expiryOption{unit: time.Second, absolute: strings.HasSuffix(opt, "AT"), raw: string(args[i+1])}
			if opt[0] == 'P' {
				e.unit = time.Millisecond
			}
			exp = &e
			i++
		default:
			return opts, change, nil, errSyntax
		}
	}
	if nx {
		opts.Condition = kv.SetIfAbsent
	} else if xx {
		opts.Condition = kv.SetIfPresent
	}
	opts.Get, opts.KeepTTL = get, keep
	change.Persist = persist
	if exp != nil && !getex {
		// GETEX checks the expiry only once it found the key.
		at, e := exp.resolve(now, command)
		if e != "" {
			return opts, change, exp, e
		}
		opts.ExpireAt = at
	}
	return opts, change, exp, ""
}

// kind names the option an expiryOption came from.
func (o expiryOption) kind() string {
	k := "EX"
	if o.unit == time.Millisecond {
		k = "PX"
	}
	if o.absolute {
		k += "AT"
	}
	return k
}

func cmdSet(x *call) {
	opts, _, _, errText := parseSetOptions(x.args[3:], x.now, false)
	if errText != "" {
		x.w.err(errText)
		return
	}
	if opts.Blind() {
		// A blind write keeps its strings only until it commits.
		x.set(x.transientArg(1), x.transientArg(2), opts, false)
		return
	}
	x.set(x.arg(1), x.arg(2), opts, false)
}

// set runs SET and writes its reply; nx1 answers SETNX's 1 or 0.
func (x *call) set(key, value string, opts kv.SetOptions, nx1 bool) {
	var res kv.SetResult
	fn := func(tx *kv.Tx) (err error) {
		res, err = tx.Set(key, value, opts)
		return err
	}
	var err error
	if opts.Blind() {
		err = x.blind(fn)
	} else {
		err = x.update([]string{key}, fn)
	}
	switch {
	case err != nil:
		x.fail(err)
	case nx1 && res.Written:
		x.w.int(1)
	case nx1:
		x.w.int(0)
	case opts.Get:
		x.bulkOrNull(res.Old, res.HadOld, nil)
	case res.Written:
		x.w.ok()
	default:
		x.w.null()
	}
}

func cmdSetNX(x *call) {
	x.set(x.arg(1), x.arg(2), kv.SetOptions{Condition: kv.SetIfAbsent}, true)
}

func cmdSetEx(x *call)  { x.setWithExpiry(time.Second, "setex") }
func cmdPSetEx(x *call) { x.setWithExpiry(time.Millisecond, "psetex") }

func (x *call) setWithExpiry(unit time.Duration, command string) {
	at, e := expiryOption{unit: unit, raw: x.arg(2)}.resolve(x.now, command)
	if e != "" {
		x.w.err(e)
		return
	}
	// Blind, like SET without conditions: views of the request's bytes.
	x.set(x.transientArg(1), x.transientArg(3), kv.SetOptions{ExpireAt: at}, false)
}

func cmdGetSet(x *call) {
	x.set(x.arg(1), x.arg(2), kv.SetOptions{Get: true}, false)
}

func cmdGetDel(x *call) {
	var v string
	var ok bool
	err := x.update([]string{x.arg(1)}, func(tx *kv.Tx) (err error) {
		v, ok, err = tx.GetDel(x.arg(1))
		return err
	})
	x.bulkOrNull(v, ok, err)
}

func cmdGetEx(x *call) {
	_, change, exp, errText := parseSetOptions(x.args[2:], x.now, true)
	if errText != "" {
		x.w.err(errText)
		return
	}
	var v string
	var ok bool
	var expiryErr string
	fn := func(tx *kv.Tx) (err error) {
		if exp != nil {
			// Redis answers nil for a missing key before it looks at
			// the expiry, so the expiry is checked against a found key.
			if _, found, err := tx.Get(x.arg(1)); err != nil || !found {
				return err
			}
			at, e := exp.resolve(tx.Now(), "getex")
			if e != "" {
				expiryErr = e
				return nil
			}
			change.Set, change.At = true, at
		}
		v, ok, err = tx.GetEx(x.arg(1), change)
		return err
	}
	var err error
	if exp != nil || change.Persist {
		err = x.update([]string{x.arg(1)}, fn)
	} else {
		err = x.view(fn)
	}
	if expiryErr != "" {
		x.w.err(expiryErr)
		return
	}
	x.bulkOrNull(v, ok, err)
}

func cmdMGet(x *call) {
	keys := x.cmd.keys(x.args)
	vals := make([]string, len(keys))
	oks := make([]bool, len(keys))
	err := x.view(func(tx *kv.Tx) error {
		for i, k := range keys {
			var err error
			if vals[i], oks[i], err = tx.Get(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.array(len(keys))
	for i := range keys {
		x.bulkOrNull(vals[i], oks[i], nil)
	}
}

// pairs returns MSET's arguments after the name, or writes the arity error.
func (x *call) pairs() ([]string, bool) {
	if len(x.args)%2 == 0 {
		x.w.err("ERR wrong number of arguments for '" + x.cmd.name + "' command")
		return nil, false
	}
	out := make([]string, len(x.args)-1)
	for i := range out {
		out[i] = x.arg(i + 1)
	}
	return out, true
}

func cmdMSet(x *call) {
	if len(x.args)%2 == 0 {
		x.w.err("ERR wrong number of arguments for '" + x.cmd.name + "' command")
		return
	}
	// A blind write keeps its strings only until it commits. The slice
	// of them is the session's, reused, when the command runs on the
	// session's goroutine (its own call).
	var pairs []string
	own := x == &x.sess.own
	if own {
		pairs = x.sess.pairs[:0]
		defer func() { x.sess.pairs = recycleStrings(pairs) }()
	}
	for i := 1; i < len(x.args); i++ {
		pairs = append(pairs, x.transientArg(i))
	}
	if err := x.blind(func(tx *kv.Tx) error { return tx.MSet(pairs) }); err != nil {
		x.fail(err)
		return
	}
	x.w.ok()
}

func cmdMSetNX(x *call) {
	pairs, ok := x.pairs()
	if !ok {
		return
	}
	var done bool
	err := x.update(x.cmd.keys(x.args), func(tx *kv.Tx) (err error) {
		done, err = tx.MSetNX(pairs)
		return err
	})
	x.intOrFail(boolInt(done), err)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// intOrFail writes n, or the error.
func (x *call) intOrFail(n int64, err error) {
	if err != nil {
		x.fail(err)
		return
	}
	x.w.int(n)
}

func cmdAppend(x *call) {
	var n int
	var err error
	if x.notBatched(); x.tx == nil {
		// One commit evaluated in the engine (see kv.Store.Append).
		n, err = x.srv.store.Append(x.ctx(), x.arg(1), x.arg(2), int(x.srv.cfg.MaxBulk))
	} else {
		n, err = x.tx.Append(x.arg(1), x.arg(2), int(x.srv.cfg.MaxBulk))
	}
	x.intOrFail(int64(n), err)
}

func cmdStrlen(x *call) {
	var v string
	err := x.view(func(tx *kv.Tx) (err error) {
		v, _, err = tx.Get(x.arg(1))
		return err
	})
	x.intOrFail(int64(len(v)), err)
}

func cmdGetRange(x *call) {
	start, ok1 := kv.ParseInt(x.arg(2))
	end, ok2 := kv.ParseInt(x.arg(3))
	if !ok1 || !ok2 {
		x.w.err(errNotInteger)
		return
	}
	var v string
	err := x.view(func(tx *kv.Tx) (err error) {
		v, err = tx.GetRange(x.arg(1), start, end)
		return err
	})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.bulk(v)
}

func cmdSetRange(x *call) {
	off, ok := kv.ParseInt(x.arg(2))
	if !ok {
		x.w.err(errNotInteger)
		return
	}
	var n int
	err := x.update([]string{x.arg(1)}, func(tx *kv.Tx) (err error) {
		n, err = tx.SetRange(x.arg(1), off, x.arg(3), int(x.srv.cfg.MaxBulk))
		return err
	})
	x.intOrFail(int64(n), err)
}

func cmdIncr(x *call) { x.incr(1) }
func cmdDecr(x *call) { x.incr(-1) }

func cmdIncrBy(x *call) {
	d, ok := kv.ParseInt(x.arg(2))
	if !ok {
		x.w.err(errNotInteger)
		return
	}
	x.incr(d)
}

func cmdDecrBy(x *call) {
	d, ok := kv.ParseInt(x.arg(2))
	if !ok {
		x.w.err(errNotInteger)
		return
	}
	if d == math.MinInt64 {
		x.fail(kv.ErrDecrOverflow)
		return
	}
	x.incr(-d)
}

func (x *call) incr(delta int64) {
	var n int64
	var err error
	if x.notBatched(); x.tx == nil {
		// One commit evaluated in the engine: concurrent INCRs share group
		// commits instead of queueing on the key (see kv.Store.IncrBy).
		// The engine copies the key (kv.Store.TransientArgs).
		n, err = x.srv.store.IncrBy(x.ctx(), x.transientArg(1), delta)
	} else {
		n, err = x.tx.IncrBy(x.arg(1), delta)
	}
	x.intOrFail(n, err)
}

func cmdIncrByFloat(x *call) {
	d, ok := kv.ParseLongDouble(x.arg(2))
	if !ok {
		x.w.err(errNotFloat)
		return
	}
	var s string
	err := x.update([]string{x.arg(1)}, func(tx *kv.Tx) (err error) {
		s, err = tx.IncrByFloat(x.arg(1), d)
		return err
	})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.bulk(s)
}

// parseInt64Arg reads argument i as an integer, or writes Redis's error.
func (x *call) parseInt64Arg(i int) (int64, bool) {
	n, ok := kv.ParseInt(x.arg(i))
	if !ok {
		x.w.err(errNotInteger)
	}
	return n, ok
}
