package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/url"
)

// HTTPClient is the suite's HTTP client for other load generators (the
// soak test, cmd/mantisdb-soak): the same requests, keep-alive pool and
// per-request timeout as the HTTP benchmark. Every key it writes lives
// under its own random namespace, so it never touches the server's other
// data and Cleanup can remove what it wrote.
type HTTPClient struct {
	s *httpStore
}

// NewHTTPClient returns a client of the server at target (see ParseTarget)
// that keeps up to conns keep-alive connections, one per worker.
func NewHTTPClient(target *url.URL, token string, conns int) (*HTTPClient, error) {
	s, err := newHTTPStore(target, token, conns)
	if err != nil {
		return nil, err
	}
	return &HTTPClient{s: s}, nil
}

// Namespace is the prefix the server sees on every key of this client.
func (c *HTTPClient) Namespace() string { return c.s.ns }

// Put stores value under key.
func (c *HTTPClient) Put(ctx context.Context, key, value string) error {
	return c.s.put(ctx, key, value)
}

// Get returns the value of key and whether it was found.
func (c *HTTPClient) Get(ctx context.Context, key string) (string, bool, error) {
	return c.s.get(ctx, key)
}

// Delete removes key (a missing key is not an error).
func (c *HTTPClient) Delete(ctx context.Context, key string) error {
	return c.s.delete(ctx, key)
}

// BatchPut writes keys[i] = values[i] for every i in one atomic batch.
func (c *HTTPClient) BatchPut(ctx context.Context, keys, values []string) error {
	if len(keys) != len(values) {
		return errors.New("BatchPut: keys and values differ in length")
	}
	kvs := make([]kv, len(keys))
	for i := range keys {
		kvs[i] = kv{key: keys[i], value: values[i]}
	}
	return c.s.batchPut(ctx, kvs)
}

// Scan reads up to limit keys starting with prefix and returns how many
// it read.
func (c *HTTPClient) Scan(ctx context.Context, prefix string, limit int) (int, error) {
	return c.s.scan(ctx, prefix, limit)
}

// Increment adds one to the decimal counter in key with compare-and-swap
// transactions, retrying on conflict; it returns the conflicts it met.
func (c *HTTPClient) Increment(ctx context.Context, key string, rng *rand.Rand) (int, error) {
	return c.s.increment(ctx, key, rng)
}

// Cleanup deletes every key of the namespace and closes idle connections;
// it returns how many keys it deleted.
func (c *HTTPClient) Cleanup(ctx context.Context) (int, error) {
	defer c.s.client.CloseIdleConnections()
	return c.s.cleanup(ctx)
}

// CloseIdleConnections closes the keep-alive connections not in use.
func (c *HTTPClient) CloseIdleConnections() { c.s.client.CloseIdleConnections() }

// HTTPStatus is the status of a request that got an answer other than the
// one expected, or 0 when err is not such an answer (a network error).
func HTTPStatus(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return 0
}
