package cluster

import "github.com/mantisdb/mantisdb/storage"

// iterator walks the local engine's records, showing users their values:
// the cluster's own keys and records expired when the iterator was made
// are skipped.
type iterator struct {
	it         storage.Iterator
	nowMs      int64
	key, value string
	err        error
}

// Next implements storage.Iterator.
func (i *iterator) Next() bool {
	if i.err != nil {
		return false
	}
	for i.it.Next() {
		k := i.it.Key()
		if isReserved(k) {
			continue
		}
		r, err := decodeRecord(k, i.it.Value())
		if err != nil {
			i.err = err
			return false
		}
		if !r.liveAt(i.nowMs) {
			continue
		}
		i.key, i.value = k, r.value
		return true
	}
	return false
}

// Key implements storage.Iterator.
func (i *iterator) Key() string { return i.key }

// Value implements storage.Iterator.
func (i *iterator) Value() string { return i.value }

// Error implements storage.Iterator.
func (i *iterator) Error() error {
	if i.err != nil {
		return i.err
	}
	return i.it.Error()
}

// Close implements storage.Iterator.
func (i *iterator) Close() error { return i.it.Close() }
