//go:build rust

package storage

/*
#include "mantisdb.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// The byte layouts the Go side and the Rust core exchange in one call:
// a write batch (mantis_write_batch), a key list (mantis_multi_get and
// mantis_diag_get_loop), a multi-get answer, and the pairs of an iterator
// batch (mantis_iter_next_batch and mantis_iter_next_view). Integers are little-endian. Their codes
// and sizes are the constants the core exports in mantisdb.h (documented
// there and in rust-core/src/ffi/wire.rs).
const (
	batchPut         = C.MANTIS_BATCH_PUT
	batchDelete      = C.MANTIS_BATCH_DELETE
	batchPutAt       = C.MANTIS_BATCH_PUT_AT
	batchKeyLenAt    = C.MANTIS_BATCH_KEY_LEN_OFFSET
	batchValueLenAt  = C.MANTIS_BATCH_VALUE_LEN_OFFSET
	batchTTLAt       = C.MANTIS_BATCH_TTL_OFFSET
	batchOpHeaderLen = C.MANTIS_BATCH_OP_HEADER_LEN
	keyHeaderLen     = C.MANTIS_MULTI_GET_KEY_HEADER_LEN
	valueHeaderLen   = C.MANTIS_MULTI_GET_VALUE_HEADER_LEN
)

// encodeOps encodes ops in the format of mantis_write_batch.
func encodeOps(ops []BatchOp) []byte {
	return appendOps(nil, ops)
}

// appendOps appends ops, in the format of mantis_write_batch, to buf,
// growing it once to the encoded size.
func appendOps(buf []byte, ops []BatchOp) []byte {
	size := 0
	for _, op := range ops {
		size += batchOpHeaderLen + len(op.Key) + len(op.Value)
	}
	buf = slices.Grow(buf, size)
	for _, op := range ops {
		switch {
		case op.Kind == OpDelete:
			buf = appendOp(buf, batchDelete, op.Key, "", 0)
		case !op.ExpireAt.IsZero():
			// Absolute, in Unix ms; the core turns a past one into a delete.
			buf = appendOp(buf, batchPutAt, op.Key, op.Value, uint64(expiryMs(op.ExpireAt)))
		default:
			buf = appendOp(buf, batchPut, op.Key, op.Value, ttlMs(op.TTL))
		}
	}
	return buf
}

// ttlMs is a put's TTL field: whole milliseconds, 0 for no expiry.
func ttlMs(ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	return uint64(ttl.Milliseconds())
}

// appendOp encodes one batch op in the format of mantis_write_batch; ms is
// its expiry field: a TTL for batchPut, a Unix time for batchPutAt.
func appendOp(buf []byte, kind byte, key, value string, ms uint64) []byte {
	at := len(buf)
	buf = append(buf, make([]byte, batchOpHeaderLen)...)
	head := buf[at:]
	head[0] = kind
	binary.LittleEndian.PutUint32(head[batchKeyLenAt:], uint32(len(key)))
	binary.LittleEndian.PutUint32(head[batchValueLenAt:], uint32(len(value)))
	binary.LittleEndian.PutUint64(head[batchTTLAt:], ms)
	buf = append(buf, key...)
	return append(buf, value...)
}

// encodeKeys encodes a key list: each key's length, then its bytes.
func encodeKeys(keys []string) []byte {
	size := 0
	for _, k := range keys {
		size += keyHeaderLen + len(k)
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
		if at+valueHeaderLen > len(data) {
			return nil, fmt.Errorf("%w: short multi-get answer", ErrCorruption)
		}
		found := data[at] == 1
		l := int(binary.LittleEndian.Uint32(data[at+1:]))
		at += valueHeaderLen
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
