package storage

import "fmt"

// conflictTracker records, while transactions are open, the sequence number
// of the newest commit of each key, so a committing transaction can find
// the keys another writer committed after it began.
type conflictTracker struct {
	// open counts the open transactions by the sequence they began at.
	open map[uint64]int
	// last is the newest commit of each key committed since the oldest open
	// transaction began.
	last map[string]uint64
	// order lists last's entries in commit order, to prune them.
	order []keySeq
}

type keySeq struct {
	key string
	seq uint64
}

func (c *conflictTracker) register(seq uint64) {
	if c.open == nil {
		c.open = make(map[uint64]int)
		c.last = make(map[string]uint64)
	}
	c.open[seq]++
}

// unregister ends a transaction that began at seq and forgets the commits
// no open transaction can conflict with. It tolerates a tracker reset by Close.
func (c *conflictTracker) unregister(seq uint64) {
	n, ok := c.open[seq]
	if !ok {
		return
	}
	if n > 1 {
		c.open[seq] = n - 1
	} else {
		delete(c.open, seq)
	}
	if len(c.open) == 0 {
		clear(c.last)
		c.order = nil
		return
	}
	oldest := uint64(0)
	first := true
	for s := range c.open {
		if first || s < oldest {
			oldest, first = s, false
		}
	}
	i := 0
	for ; i < len(c.order) && c.order[i].seq <= oldest; i++ {
		if ks := c.order[i]; c.last[ks.key] == ks.seq {
			delete(c.last, ks.key)
		}
	}
	c.order = c.order[i:]
}

// record notes a commit of key at seq, if any transaction is open.
func (c *conflictTracker) record(key string, seq uint64) {
	if len(c.open) == 0 {
		return
	}
	c.last[key] = seq
	c.order = append(c.order, keySeq{key, seq})
}

// check fails if key was committed after start.
func (c *conflictTracker) check(key string, start uint64) error {
	if seq, ok := c.last[key]; ok && seq > start {
		return fmt.Errorf("%w: key %s was committed by another writer (seq %d) after this transaction began (seq %d)",
			ErrConflict, showKey(key), seq, start)
	}
	return nil
}

// showKey renders a key for an error message: quoted, cut at 64 bytes.
func showKey(key string) string {
	if len(key) > 64 {
		return fmt.Sprintf("%q...", key[:64])
	}
	return fmt.Sprintf("%q", key)
}
