package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mantisdb/mantisdb/storage"
)

// batchRequest is the JSON body of POST /api/v1/kv/batch.
type batchRequest struct {
	Operations []opRequest `json:"operations"`
	Atomic     bool        `json:"atomic"`
}

// batch is a validated batch.
type batch struct {
	ops    []op
	atomic bool
}

// batchAnswer is the answer to a batch: one result per operation, in order.
type batchAnswer struct {
	Results []opResult `json:"results"`
}

// decodeBatch reads and validates a batch body. Every error it returns is
// an *apiError with a 4xx status, or the body reader's *http.MaxBytesError.
func decodeBatch(body io.Reader, lim limits) (batch, error) {
	var req batchRequest
	if err := decodeJSON(body, &req); err != nil {
		return batch{}, err
	}
	if len(req.Operations) > lim.maxOps {
		return batch{}, tooLargef("batch has %d operations, over the limit of %d", len(req.Operations), lim.maxOps)
	}
	ops, err := validateOps("operations", req.Operations, lim, true)
	if err != nil {
		return batch{}, err
	}
	return batch{ops: ops, atomic: req.Atomic}, nil
}

func (s *Server) requestLimits() limits {
	return limits{maxValueSize: s.opts.MaxValueSize, maxOps: s.opts.MaxBatchOps}
}

// handleBatch runs a batch. Either way a get answers what the operations
// before it in the batch leave behind. With "atomic": true the puts and
// deletes commit as one engine Write (all or none), and gets read one
// snapshot taken just before that commit; without it the operations run
// one by one in order.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	_, err := parseQuery(r)
	var b batch
	if err == nil {
		b, err = decodeBatch(r.Body, s.requestLimits())
	}
	var results []opResult
	if err == nil {
		if b.atomic {
			results, err = s.runAtomic(r.Context(), b.ops)
		} else {
			results, err = s.runInOrder(r.Context(), b.ops)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, batchAnswer{Results: results})
}

// runAtomic reads every get at one snapshot, overlays the batch's own
// earlier writes, and commits the writes as one Write.
func (s *Server) runAtomic(ctx context.Context, ops []op) ([]opResult, error) {
	var gets []string
	var writes []storage.BatchOp
	for _, o := range ops {
		switch o.kind {
		case opGet:
			gets = append(gets, o.key)
		case opPut:
			writes = append(writes, storage.BatchOp{Kind: storage.OpPut, Key: o.key, Value: o.value, TTL: o.ttl})
		case opDelete:
			writes = append(writes, storage.BatchOp{Kind: storage.OpDelete, Key: o.key})
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
	results := make([]opResult, 0, len(ops))
	for _, o := range ops {
		switch o.kind {
		case opGet:
			if wr, ok := pending[o.key]; ok {
				results = append(results, getResult(o, wr.value, !wr.deleted))
			} else {
				v, found := snapshot[o.key]
				results = append(results, getResult(o, v, found))
			}
		case opPut:
			pending[o.key] = write{value: o.value}
			results = append(results, newResult(o))
		case opDelete:
			pending[o.key] = write{deleted: true}
			results = append(results, newResult(o))
		}
	}
	if len(writes) > 0 {
		if err := s.engine.Write(ctx, writes); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// runInOrder applies the operations one at a time. Validation happened
// first, so only an engine failure can stop it part way.
func (s *Server) runInOrder(ctx context.Context, ops []op) ([]opResult, error) {
	results := make([]opResult, 0, len(ops))
	for i, o := range ops {
		var err error
		switch o.kind {
		case opGet:
			var v string
			v, err = s.engine.Get(ctx, o.key)
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				results = append(results, getResult(o, v, err == nil))
				err = nil
			}
		case opPut:
			if o.ttl > 0 {
				err = s.engine.PutWithTTL(ctx, o.key, o.value, o.ttl)
			} else {
				err = s.engine.Put(ctx, o.key, o.value)
			}
			results = append(results, newResult(o))
		case opDelete:
			err = s.engine.Delete(ctx, o.key)
			results = append(results, newResult(o))
		}
		if err != nil {
			return nil, fmt.Errorf("operations[%d] failed, the ones before it were applied: %w", i, err)
		}
	}
	return results, nil
}
