package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mantisdb/mantisdb/internal/kv"
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

// handleBatch runs a batch (kv.Store.Batch): with "atomic": true its
// writes commit as one, else the operations run one by one in order.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	_, err := parseQuery(r)
	var b batch
	if err == nil {
		b, err = decodeBatch(r.Body, s.requestLimits())
	}
	var results []kv.Result
	if err == nil {
		results, err = s.kv.Batch(r.Context(), kvOps(b.ops), b.atomic)
	}
	var partial *kv.PartialBatchError
	if errors.As(err, &partial) {
		err = fmt.Errorf("operations[%d] failed, the ones before it were applied: %w", partial.Index, partial.Err)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, batchAnswer{Results: newResults(results)})
}
