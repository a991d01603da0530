package crashtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
)

// maxPipeline is the most commands one Redis-protocol pipeline carries.
const maxPipeline = 16

// writeError is a write the server answered wrongly before the kill: an
// error reply, or a DEL count that contradicts the key's state.
type writeError struct {
	op  *op
	err *replyError
}

func (e *writeError) Error() string {
	return fmt.Sprintf("%s (op %d) %v", e.op.kind, e.op.id, e.err)
}

// respWriter is writer's counterpart over the Redis protocol: SET, DEL and
// MSET on its keys until stop closes, half of the time one command alone
// and half of the time a pipeline of 2 to maxPipeline commands written at
// once. The commands of a pipeline touch pairwise distinct keys, so each
// key still has at most one operation in flight at the kill and the model
// can resolve each on its own; the server runs such a pipeline's writes
// side by side, so they share group commits. A command is acknowledged
// when its reply arrived; those after the first reply that did not are in
// flight. Every reply is checked: +OK for SET and MSET, and for DEL the
// count the key's known state implies.
func (r *run) respWriter(ctx context.Context, stop <-chan struct{}, addr string, keys []int, firstID, seed uint64) ([]record, error) {
	rng := rand.New(rand.NewPCG(seed, firstID))
	conn, err := dialRESP(ctx, addr)
	if err != nil {
		select {
		case <-stop:
			return nil, nil // the kill came first
		default:
			return nil, err
		}
	}
	defer conn.close()
	// What each key holds now, for DEL's reply: the model as the cycle
	// began (read only during the load), then this writer's own writes.
	present := make(map[int]bool, len(keys))
	for _, k := range keys {
		present[k] = r.model.keys[k].present
	}
	var recs []record
	next := firstID
	for next+maxPipeline < firstID+maxOpsPerCycle {
		select {
		case <-stop:
			return recs, nil
		default:
		}
		n := 1
		if rng.IntN(2) == 0 {
			n = 2 + rng.IntN(maxPipeline-1)
		}
		free := make([]int, len(keys))
		for i, j := range rng.Perm(len(keys)) {
			free[i] = keys[j]
		}
		var batch []*op
		for len(batch) < n && len(free) > 0 {
			var o *op
			o, free = newRESPOp(rng, next, free)
			next++
			batch = append(batch, o)
			conn.queue(o)
		}
		base := len(recs)
		for _, o := range batch {
			recs = append(recs, record{op: o, pipelined: len(batch) > 1})
		}
		if err := conn.send(); err != nil {
			return recs, nil
		}
		for i, o := range batch {
			rep, err := conn.reply()
			if errors.Is(err, errReplyShape) {
				return recs, fmt.Errorf("reply to %s (op %d): %w", o.kind, o.id, err)
			}
			if err != nil {
				return recs, nil // the kill: this one and the rest are in flight
			}
			if re := checkReply(o, rep, present[o.writes[0].key]); re != nil {
				return recs, &writeError{op: o, err: re}
			}
			recs[base+i].acked = true
			for _, w := range o.writes {
				present[w.key] = !w.del
			}
		}
	}
	return recs, nil
}

// newRESPOp draws one command on keys taken from the front of free, and
// returns the keys left: 55% SET, 10% DEL, 35% MSET of 2-8 keys (a SET
// when fewer than two keys are left).
func newRESPOp(rng *rand.Rand, id uint64, free []int) (*op, []int) {
	o := &op{id: id}
	switch p := rng.IntN(100); {
	case p >= 65 && len(free) >= 2:
		o.kind = opBatch
		n := min(2+rng.IntN(maxBatch-1), len(free))
		for _, k := range free[:n] {
			o.writes = append(o.writes, write{key: k, size: valueSize(rng)})
		}
		return o, free[n:]
	case p >= 55 && p < 65:
		o.kind = opDelete
		o.writes = []write{{key: free[0], del: true}}
	default:
		o.kind = opPut
		o.writes = []write{{key: free[0], size: valueSize(rng)}}
	}
	return o, free[1:]
}
