package resp

import (
	"strconv"
	"strings"

	"github.com/mantisdb/mantisdb/internal/kv"
)

// cmdScan answers SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]. Cursors
// are decimal numbers the server maps to key positions (kv/cursor.go).
func cmdScan(x *call) {
	cursor, err := strconv.ParseUint(x.arg(1), 10, 64)
	if err != nil {
		x.w.err("ERR invalid cursor")
		return
	}
	var opts kv.ScanOptions
	for i := 2; i < len(x.args); i += 2 {
		if i+1 >= len(x.args) {
			x.w.err(errSyntax)
			return
		}
		switch strings.ToUpper(x.arg(i)) {
		case "MATCH":
			opts.Match = x.arg(i + 1)
			if opts.Match == "*" {
				opts.Match = ""
			}
		case "COUNT":
			n, ok := x.parseInt64Arg(i + 1)
			if !ok {
				return
			}
			if n < 1 {
				x.w.err(errSyntax)
				return
			}
			opts.Count = int(min(n, 1<<30))
		case "TYPE":
			opts.Type = strings.ToLower(x.arg(i + 1))
		default:
			x.w.err(errSyntax)
			return
		}
	}
	var next uint64
	var keys []string
	err = x.view(func(tx *kv.Tx) (err error) {
		next, keys, err = tx.Scan(x.ctx(), cursor, opts)
		return err
	})
	if err != nil {
		x.fail(err)
		return
	}
	x.w.array(2)
	x.w.bulk(strconv.FormatUint(next, 10))
	x.w.bulks(keys)
}
