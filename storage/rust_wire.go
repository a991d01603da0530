//go:build rust

package storage

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The byte layouts the Go side and the Rust core exchange in one call:
// a write batch (mantis_write_batch), a key list (mantis_multi_get and
// mantis_diag_get_loop), a multi-get answer, and the pairs of an iterator
// batch (mantis_iter_next_batch). Integers are little-endian.

// encodeOps encodes ops in the format of mantis_write_batch.
func encodeOps(ops []BatchOp) []byte {
	size := 0
	for _, op := range ops {
		size += 17 + len(op.Key) + len(op.Value)
	}
	buf := make([]byte, 0, size)
	for _, op := range ops {
		kind := byte(0)
		value := op.Value
		if op.Kind == OpDelete {
			kind, value = 1, ""
		}
		buf = appendOp(buf, kind, op.Key, value, op.TTL)
	}
	return buf
}

// appendOp encodes one batch op in the format of mantis_write_batch.
func appendOp(buf []byte, kind byte, key, value string, ttl time.Duration) []byte {
	buf = append(buf, kind)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(key)))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(value)))
	ms := uint64(0)
	if ttl > 0 {
		ms = uint64(ttl.Milliseconds())
	}
	buf = binary.LittleEndian.AppendUint64(buf, ms)
	buf = append(buf, key...)
	return append(buf, value...)
}

// encodeKeys encodes a key list: each key's length, then its bytes.
func encodeKeys(keys []string) []byte {
	size := 0
	for _, k := range keys {
		size += 4 + len(k)
	}
	kb := make([]byte, 0, size)
	for _, k := range keys {
		kb = binary.LittleEndian.AppendUint32(kb, uint32(len(k)))
		kb = append(kb, k...)
	}
	return kb
}

// decodeMultiGet reads a mantis_multi_get answer for keys: per key a found
// byte, the value's length and its bytes. The map holds the found keys.
func decodeMultiGet(data []byte, keys []string) (map[string]string, error) {
	res := make(map[string]string, len(keys))
	at := 0
	for _, k := range keys {
		if at+5 > len(data) {
			return nil, fmt.Errorf("%w: short multi-get answer", ErrCorruption)
		}
		found := data[at] == 1
		l := int(binary.LittleEndian.Uint32(data[at+1:]))
		at += 5
		if at+l > len(data) {
			return nil, fmt.Errorf("%w: short multi-get answer", ErrCorruption)
		}
		if found {
			res[k] = string(data[at : at+l])
		}
		at += l
	}
	return res, nil
}

// decodePair reads the pair at the start of b, a part of an iterator batch:
// key length, value length, key, value. n is the bytes it took.
func decodePair(b []byte) (key, value []byte, n int) {
	kl := int(binary.LittleEndian.Uint32(b))
	vl := int(binary.LittleEndian.Uint32(b[4:]))
	return b[8 : 8+kl], b[8+kl : 8+kl+vl], 8 + kl + vl
}
