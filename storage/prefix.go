package storage

// PrefixSuccessor returns the smallest key greater than every key starting
// with prefix, the exclusive end of a prefix scan as a range: "ab" gives
// "ac", "a\xff" gives "b". It returns false when there is none (prefix is
// empty or all 0xff bytes): such a scan runs to the last key.
func PrefixSuccessor(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
