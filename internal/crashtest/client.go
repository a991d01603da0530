package crashtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// requestTimeout bounds one request. Under --sync always a write waits for
// fdatasync, which a busy disk can stretch, but never this long.
const requestTimeout = 30 * time.Second

// client speaks the server's HTTP API for the harness.
type client struct {
	base string
	http *http.Client
}

func newClient(base string, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &client{base: base, http: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// answerError is an HTTP answer other than 2xx.
type answerError struct {
	status int
	body   string
}

func (e *answerError) Error() string {
	return fmt.Sprintf("status %d: %s", e.status, e.body)
}

// rejected reports whether err is a 4xx answer: the server refused the
// request, so nothing was written, and the harness sent something wrong.
func rejected(err error) bool {
	var ae *answerError
	return errors.As(err, &ae) && ae.status >= 400 && ae.status < 500
}

// do sends req and returns the body of a 2xx answer.
func (c *client) do(req *http.Request) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &answerError{status: resp.StatusCode, body: string(bytes.TrimSpace(body))}
	}
	return body, nil
}

func (c *client) keyURL(key string) string {
	return c.base + "/api/v1/kv/" + url.PathEscape(key)
}

// batchOp is one operation of the JSON batch body.
type batchOp struct {
	Op            string  `json:"op"`
	Key           string  `json:"key"`
	Value         *string `json:"value,omitempty"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

// send performs o. nil means the server acknowledged it (2xx).
// Single puts go as raw bodies, batches as JSON with base64 values, so
// both ways of sending a value are covered.
func (c *client) send(ctx context.Context, o *op) error {
	var req *http.Request
	var err error
	switch o.kind {
	case opPut:
		w := o.writes[0]
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, c.keyURL(keyName(w.key)),
			bytes.NewReader(valueBytes(o.id, w.key, w.size)))
		if err == nil {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
	case opDelete:
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, c.keyURL(keyName(o.writes[0].key)), nil)
	case opBatch:
		ops := make([]batchOp, len(o.writes))
		for i, w := range o.writes {
			ops[i] = batchOp{Op: "delete", Key: keyName(w.key)}
			if !w.del {
				v := base64.StdEncoding.EncodeToString(valueBytes(o.id, w.key, w.size))
				ops[i] = batchOp{Op: "put", Key: keyName(w.key), Value: &v, ValueEncoding: "base64"}
			}
		}
		body, merr := json.Marshal(map[string]any{"atomic": true, "operations": ops})
		if merr != nil {
			return merr
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v1/kv/batch", bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return err
	}
	_, err = c.do(req)
	return err
}

// scanPage is one page of GET /api/v1/kv.
type scanPage struct {
	Items []struct {
		Key           string `json:"key"`
		KeyEncoding   string `json:"key_encoding"`
		Value         string `json:"value"`
		ValueEncoding string `json:"value_encoding"`
	} `json:"items"`
	Next         *string `json:"next"`
	NextEncoding string  `json:"next_encoding"`
}

// scan reads every key under keyPrefix, page by page.
func (c *client) scan(ctx context.Context) (map[string]observed, error) {
	got := make(map[string]observed)
	start := ""
	for page := 0; ; page++ {
		if page > 1_000_000 {
			return nil, errors.New("scan: the pages never end")
		}
		q := url.Values{"prefix": {keyPrefix}, "limit": {"1000"}}
		if start != "" {
			q.Set("start", start)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/kv?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		body, err := c.do(req)
		if err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		var p scanPage
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("scan: decoding the answer: %w", err)
		}
		for _, it := range p.Items {
			k, err := decodeField(it.Key, it.KeyEncoding)
			if err != nil {
				return nil, fmt.Errorf("scan: key %q: %w", it.Key, err)
			}
			v, err := decodeField(it.Value, it.ValueEncoding)
			if err != nil {
				return nil, fmt.Errorf("scan: value of %q: %w", k, err)
			}
			if _, dup := got[string(k)]; dup {
				return nil, fmt.Errorf("scan: key %q answered twice", k)
			}
			got[string(k)] = observed{present: true, value: v}
		}
		if p.Next == nil {
			return got, nil
		}
		next, err := decodeField(*p.Next, p.NextEncoding)
		if err != nil {
			return nil, fmt.Errorf("scan: next: %w", err)
		}
		start = string(next)
	}
}

// get reads one key as raw bytes through the point-read route.
func (c *client) get(ctx context.Context, key string) (observed, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.keyURL(key), nil)
	if err != nil {
		return observed{}, err
	}
	req.Header.Set("Accept", "application/octet-stream")
	body, err := c.do(req)
	var ae *answerError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return observed{}, nil
	}
	if err != nil {
		return observed{}, fmt.Errorf("GET %s: %w", key, err)
	}
	return observed{present: true, value: body}, nil
}

// stats reads the counters the harness reports and checks.
type stats struct {
	Keys        uint64 `json:"keys"`
	Segments    uint64 `json:"segments"`
	Compactions uint64 `json:"compactions"`
}

func (c *client) stats(ctx context.Context) (stats, error) {
	var st stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/stats", nil)
	if err != nil {
		return st, err
	}
	body, err := c.do(req)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("stats: decoding the answer: %w", err)
	}
	return st, nil
}

func decodeField(s, encoding string) ([]byte, error) {
	switch encoding {
	case "":
		return []byte(s), nil
	case "base64":
		return base64.StdEncoding.DecodeString(s)
	default:
		return nil, fmt.Errorf("unknown encoding %s", strconv.Quote(encoding))
	}
}
