package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// httpTimeout bounds one request, so a stalled server fails a test
// instead of hanging it.
const httpTimeout = 30 * time.Second

// cleanupPage is how many keys one scan page and one delete batch of the
// clean-up hold.
const cleanupPage = 500

// httpStore drives a running server through its HTTP API. Every key is
// prefixed with ns, so a run never touches the server's other data.
type httpStore struct {
	base   string // scheme://host, no trailing slash
	token  string
	ns     string
	client *http.Client
}

// newHTTPStore returns a store for the server at target with a random
// namespace. Its client keeps up to workers idle connections, so every
// worker reuses its own keep-alive connection.
func newHTTPStore(target *url.URL, token string, workers int) (*httpStore, error) {
	var nonce [4]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = workers
	tr.MaxIdleConnsPerHost = workers
	return &httpStore{
		base:   strings.TrimSuffix((&url.URL{Scheme: target.Scheme, Host: target.Host}).String(), "/"),
		token:  token,
		ns:     "bench-" + hex.EncodeToString(nonce[:]) + "/",
		client: &http.Client{Transport: tr, Timeout: httpTimeout},
	}, nil
}

// statusError is an answer other than the one expected.
type statusError struct {
	method, path string
	status       int
	msg          string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.msg)
}

// do sends a request and returns the answer body when the status is want;
// any other status is a *statusError carrying the server's message.
func (s *httpStore) do(ctx context.Context, method, path string, body io.Reader, header http.Header, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	// Reading to the end lets the connection go back to the idle pool.
	data, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		var e struct {
			Error struct{ Code, Message string }
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			msg = e.Error.Code + ": " + e.Error.Message
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return nil, &statusError{method: method, path: path, status: resp.StatusCode, msg: msg}
	}
	return data, nil
}

// doJSON sends in as a JSON body (when not nil) and decodes the answer into out.
func (s *httpStore) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	var header http.Header
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		header = http.Header{"Content-Type": {"application/json"}}
	}
	data, err := s.do(ctx, method, path, body, header, http.StatusOK)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// keyPath is the path of key: one percent-escaped segment, "/" as %2F.
func (s *httpStore) keyPath(key string) string {
	return "/api/v1/kv/" + url.PathEscape(s.ns+key)
}

var (
	rawBody   = http.Header{"Content-Type": {"application/octet-stream"}}
	rawAnswer = http.Header{"Accept": {"application/octet-stream"}}
)

func (s *httpStore) put(ctx context.Context, key, value string) error {
	_, err := s.do(ctx, http.MethodPut, s.keyPath(key), strings.NewReader(value), rawBody, http.StatusOK)
	return err
}

func (s *httpStore) get(ctx context.Context, key string) (string, bool, error) {
	data, err := s.do(ctx, http.MethodGet, s.keyPath(key), nil, rawAnswer, http.StatusOK)
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(data), true, nil
}

func (s *httpStore) delete(ctx context.Context, key string) error {
	_, err := s.do(ctx, http.MethodDelete, s.keyPath(key), nil, nil, http.StatusOK)
	return err
}

// batchOp is one operation of a batch or transaction request.
type batchOp struct {
	Op    string  `json:"op"`
	Key   string  `json:"key"`
	Value *string `json:"value,omitempty"`
}

// opResult is one result of a transaction answer: the value a get found.
type opResult struct {
	Value *string `json:"value"`
}

func (s *httpStore) batchPut(ctx context.Context, kvs []kv) error {
	ops := make([]batchOp, len(kvs))
	for i, p := range kvs {
		ops[i] = batchOp{Op: "put", Key: s.ns + p.key, Value: &p.value}
	}
	return s.doJSON(ctx, http.MethodPost, "/api/v1/kv/batch",
		map[string]any{"operations": ops, "atomic": true}, nil)
}

// scanPage is the part of a scan answer the suite reads.
type scanPage struct {
	Items []struct {
		Key string `json:"key"`
	} `json:"items"`
	Next *string `json:"next"`
}

func (s *httpStore) scanPage(ctx context.Context, prefix, start string, limit int) (scanPage, error) {
	q := url.Values{"prefix": {prefix}, "limit": {strconv.Itoa(limit)}}
	if start != "" {
		q.Set("start", start)
	}
	var page scanPage
	err := s.doJSON(ctx, http.MethodGet, "/api/v1/kv?"+q.Encode(), nil, &page)
	return page, err
}

func (s *httpStore) scan(ctx context.Context, prefix string, limit int) (int, error) {
	page, err := s.scanPage(ctx, s.ns+prefix, "", limit)
	return len(page.Items), err
}

// increment reads the counter, then asks the server to compare-and-swap
// it: put n+1 if it still holds n, else get its new value and try again.
func (s *httpStore) increment(ctx context.Context, key string, rng *mrand.Rand) (int, error) {
	v, found, err := s.get(ctx, key)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("counter %q is missing", key)
	}
	conflicts := 0
	for attempt := 1; attempt <= maxTxnAttempts; attempt++ {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return conflicts, fmt.Errorf("counter %q holds %q, not a number", key, v)
		}
		next := strconv.FormatInt(n+1, 10)
		txn := map[string]any{
			"compare": []map[string]any{{"key": s.ns + key, "value": v}},
			"success": []batchOp{{Op: "put", Key: s.ns + key, Value: &next}},
			"failure": []batchOp{{Op: "get", Key: s.ns + key}},
		}
		var ans struct {
			Succeeded bool       `json:"succeeded"`
			Results   []opResult `json:"results"`
		}
		err = s.doJSON(ctx, http.MethodPost, "/api/v1/txn", txn, &ans)
		var se *statusError
		switch {
		case errors.As(err, &se) && se.status == http.StatusConflict:
			// The server retried its own engine conflicts and gave up:
			// read again and retry.
			conflicts++
			if v, found, err = s.get(ctx, key); err != nil || !found {
				return conflicts, errors.Join(err, fmt.Errorf("counter %q vanished", key))
			}
		case err != nil:
			return conflicts, err
		case ans.Succeeded:
			return conflicts, nil
		default:
			conflicts++
			if len(ans.Results) != 1 || ans.Results[0].Value == nil {
				return conflicts, fmt.Errorf("counter %q: the failure branch did not return its value", key)
			}
			v = *ans.Results[0].Value
		}
		if err := backoff(ctx, attempt, rng); err != nil {
			return conflicts, err
		}
	}
	return conflicts, fmt.Errorf("increment of %q conflicted %d times in a row", key, maxTxnAttempts)
}

func (s *httpStore) cache(ctx context.Context) (cacheCounters, error) {
	var st struct {
		Hits     uint64 `json:"hits"`
		Misses   uint64 `json:"misses"`
		Capacity uint64 `json:"cache_capacity_bytes"`
	}
	err := s.doJSON(ctx, http.MethodGet, "/api/v1/stats", nil, &st)
	return cacheCounters{hits: st.Hits, misses: st.Misses, capacity: st.Capacity}, err
}

// engineName asks the server which engine it runs; it is also the first
// request, so a wrong address or token fails here.
func (s *httpStore) engineName(ctx context.Context) (string, error) {
	var v struct {
		Engine string `json:"engine"`
	}
	if err := s.doJSON(ctx, http.MethodGet, "/api/v1/version", nil, &v); err != nil {
		return "", err
	}
	return v.Engine, nil
}

// cleanup deletes every key of the namespace, a page at a time, and
// returns how many it deleted.
func (s *httpStore) cleanup(ctx context.Context) (int, error) {
	deleted := 0
	start := ""
	for {
		page, err := s.scanPage(ctx, s.ns, start, cleanupPage)
		if err != nil {
			return deleted, err
		}
		if len(page.Items) > 0 {
			ops := make([]batchOp, len(page.Items))
			for i, it := range page.Items {
				ops[i] = batchOp{Op: "delete", Key: it.Key}
			}
			n, err := s.deleteKeys(ctx, ops)
			deleted += n
			if err != nil {
				return deleted, err
			}
		}
		if page.Next == nil {
			return deleted, nil
		}
		start = *page.Next
	}
}

// deleteKeys deletes with one batch, or key by key when the server's
// --max-batch-ops is below cleanupPage.
func (s *httpStore) deleteKeys(ctx context.Context, ops []batchOp) (int, error) {
	err := s.doJSON(ctx, http.MethodPost, "/api/v1/kv/batch", map[string]any{"operations": ops}, nil)
	var se *statusError
	if !errors.As(err, &se) || se.status != http.StatusRequestEntityTooLarge {
		if err != nil {
			return 0, err
		}
		return len(ops), nil
	}
	for i, o := range ops {
		if _, err := s.do(ctx, http.MethodDelete, "/api/v1/kv/"+url.PathEscape(o.Key), nil, nil, http.StatusOK); err != nil {
			return i, err
		}
	}
	return len(ops), nil
}

// httpSubject is a server under test: one namespace on it for the whole
// run. Memory Pressure cannot resize the server's cache, so it runs on the
// same server and reports whether the cache was smaller than the data.
type httpSubject struct {
	st     *httpStore
	engine string
}

func (s *httpSubject) label() string { return s.engine }
func (s *httpSubject) store() store  { return s.st }

func (s *httpSubject) withCache(int64) (store, func() error, error) {
	return s.st, func() error { return nil }, nil
}

// close deletes the run's keys from the server (best effort: the error
// says what was left).
func (s *httpSubject) close(ctx context.Context) error {
	n, err := s.st.cleanup(ctx)
	s.st.client.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("deleting the benchmark's keys under %q on the server (deleted %d): %w", s.st.ns, n, err)
	}
	return nil
}
