package kv

import (
	"context"
	"errors"
	"fmt"

	"github.com/mantisdb/mantisdb/storage"
)

// PartialBatchError is the failure of a batch run in order (not atomic):
// operation Index failed with Err, and the operations before it were
// applied. errors.Is sees through it to Err.
type PartialBatchError struct {
	Index int
	Err   error
}

func (e *PartialBatchError) Error() string {
	return fmt.Sprintf("op %d failed, the ones before it were applied: %v", e.Index, e.Err)
}

func (e *PartialBatchError) Unwrap() error { return e.Err }

// Batch runs ops and answers one Result per op, in order. Every op is
// validated first (Op.Validate), so a bad op stops the batch before any
// runs. Either way a get answers what the ops before it in the batch leave
// behind.
//
// With atomic, the puts and deletes commit as one engine Write (all or
// none, also after a crash) and the gets read one snapshot taken just
// before that commit. Without it the ops run one by one; an engine failure
// stops the batch with a *PartialBatchError.
func (s *Store) Batch(ctx context.Context, ops []Op, atomic bool) ([]Result, error) {
	if err := validateOps(ops, false); err != nil {
		return nil, err
	}
	if atomic {
		return s.batchAtomic(ctx, ops)
	}
	return s.batchInOrder(ctx, ops)
}

// batchAtomic reads every get at one snapshot, overlays the batch's own
// earlier writes, and commits the writes as one Write.
func (s *Store) batchAtomic(ctx context.Context, ops []Op) ([]Result, error) {
	var gets []string
	var writes []storage.BatchOp
	for _, o := range ops {
		switch o.Kind {
		case OpGet:
			gets = append(gets, o.Key)
		case OpPut:
			writes = append(writes, storage.BatchOp{Kind: storage.OpPut, Key: o.Key, Value: o.Value, TTL: o.TTL})
		case OpDelete:
			writes = append(writes, storage.BatchOp{Kind: storage.OpDelete, Key: o.Key})
		}
	}
	var snapshot map[string]string
	if len(gets) > 0 {
		var err error
		if snapshot, err = s.engine.BatchGet(ctx, gets); err != nil {
			return nil, err
		}
	}
	// pending holds the batch's writes so far: a get after a put or delete
	// of its key answers from the batch, as if the ops ran in order.
	type write struct {
		value   string
		deleted bool
	}
	pending := make(map[string]write)
	results := make([]Result, 0, len(ops))
	for _, o := range ops {
		res := Result{Kind: o.Kind, Key: o.Key}
		switch o.Kind {
		case OpGet:
			if wr, ok := pending[o.Key]; ok {
				res.Value, res.Found = wr.value, !wr.deleted
			} else {
				res.Value, res.Found = snapshot[o.Key]
			}
		case OpPut:
			pending[o.Key] = write{value: o.Value}
		case OpDelete:
			pending[o.Key] = write{deleted: true}
		}
		results = append(results, res)
	}
	if len(writes) > 0 {
		if err := s.engine.Write(ctx, writes); err != nil {
			return nil, err
		}
		s.touchPuts(writes)
	}
	return results, nil
}

// batchInOrder applies the ops one at a time.
func (s *Store) batchInOrder(ctx context.Context, ops []Op) ([]Result, error) {
	results := make([]Result, 0, len(ops))
	for i, o := range ops {
		res := Result{Kind: o.Kind, Key: o.Key}
		var err error
		switch o.Kind {
		case OpGet:
			res.Value, err = s.engine.Get(ctx, o.Key)
			res.Found = err == nil
			if errors.Is(err, storage.ErrNotFound) {
				err = nil
			}
		case OpPut:
			err = s.Put(ctx, o.Key, o.Value, o.TTL)
		case OpDelete:
			err = s.engine.Delete(ctx, o.Key)
		}
		if err != nil {
			return nil, &PartialBatchError{Index: i, Err: err}
		}
		results = append(results, res)
	}
	return results, nil
}
