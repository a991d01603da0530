//go:build rust

package storage

import (
	"encoding/binary"
	"time"
)

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
