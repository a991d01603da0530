package clusterfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// respClient runs key-value operations against the nodes' Redis protocol
// ports, one go-redis client per node. Reads are at the server's default
// consistency (the harness starts the servers with the run's
// --read-consistency). go-redis's own retries are off: a command sent
// twice would hide what the first attempt did.
type respClient struct {
	c []*redis.Client
}

func newRESPClient(nodes []*node, timeout time.Duration) *respClient {
	r := &respClient{}
	for _, n := range nodes {
		r.c = append(r.c, redis.NewClient(&redis.Options{
			Addr:         net.JoinHostPort("127.0.0.1", strconv.Itoa(n.respPort)),
			Protocol:     2,
			MaxRetries:   -1,
			DialTimeout:  time.Second,
			ReadTimeout:  timeout,
			WriteTimeout: timeout,
			PoolSize:     2,
			// A command whose context ends closes its connection, so a
			// late reply cannot be read as the next command's.
			ContextTimeoutEnabled: true,
			DisableIdentity:       true,
		}))
	}
	return r
}

func (r *respClient) close() {
	for _, c := range r.c {
		_ = c.Close()
	}
}

// get reads key on node n: the value, or "" if absent.
func (r *respClient) get(ctx context.Context, n int, key string) (string, error) {
	v, err := r.c[n].Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// respWrite classifies the answer of a write command: nil (applied) or
// errIndefinite. Every error reply counts as indefinite: the server
// answers errors such as "no cluster leader is reachable" and "outcome
// unknown" alike, and treating a write that had no effect as one that
// may have had only weakens the check, never fails it wrongly.
func respWrite(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", errIndefinite, err)
}

func (r *respClient) put(ctx context.Context, n int, key, value string) error {
	return respWrite(r.c[n].Set(ctx, key, value, 0).Err())
}

func (r *respClient) del(ctx context.Context, n int, key string) error {
	return respWrite(r.c[n].Del(ctx, key).Err())
}

// errAborted is a Redis CAS whose EXEC answered nil.
var errAborted = errors.New("EXEC aborted: a watched key changed")

// cas swaps key from expected ("" = absent) to value the Redis way: WATCH
// the key, GET it, and when it holds expected, MULTI/SET/EXEC. A GET
// showing another value is a definite false. A nil EXEC is errAborted:
// the transaction did not run, but a nil EXEC does not prove the value
// changed (the server may abort for a write of the key it committed
// after WATCH began even if the write was visible before), so it is
// recorded as a CAS that changed nothing. An error before EXEC was sent
// changed nothing (a plain error: the operation is left out of the
// history); an error of EXEC itself leaves the outcome unknown.
func (r *respClient) cas(ctx context.Context, n int, key, expected, value string) (bool, error) {
	swapped, execSent := false, false
	err := r.c[n].Watch(ctx, func(tx *redis.Tx) error {
		cur, err := tx.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			cur = ""
		case err != nil:
			return err
		}
		if cur != expected {
			return nil
		}
		execSent = true
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, value, 0)
			return nil
		})
		if err == nil {
			swapped = true
		}
		return err
	}, key)
	switch {
	case err == nil:
		return swapped, nil
	case errors.Is(err, redis.TxFailedErr):
		return false, errAborted
	case execSent:
		return false, fmt.Errorf("%w: EXEC: %v", errIndefinite, err)
	}
	return false, fmt.Errorf("before EXEC: %w", err)
}

// kvClient is one protocol's way of running the harness's operations on a
// node.
type kvClient interface {
	get(ctx context.Context, n *node, key string) (string, error)
	put(ctx context.Context, n *node, key, value string) error
	del(ctx context.Context, n *node, key string) error
	cas(ctx context.Context, n *node, key, expected, value string) (bool, error)
}

type httpKV struct{ c *httpClient }

func (h httpKV) get(ctx context.Context, n *node, key string) (string, error) {
	return h.c.get(ctx, n.httpAddr, key)
}
func (h httpKV) put(ctx context.Context, n *node, key, value string) error {
	return h.c.put(ctx, n.httpAddr, key, value)
}
func (h httpKV) del(ctx context.Context, n *node, key string) error {
	return h.c.del(ctx, n.httpAddr, key)
}
func (h httpKV) cas(ctx context.Context, n *node, key, expected, value string) (bool, error) {
	return h.c.cas(ctx, n.httpAddr, key, expected, value)
}

type respKV struct{ c *respClient }

func (r respKV) get(ctx context.Context, n *node, key string) (string, error) {
	return r.c.get(ctx, n.index, key)
}
func (r respKV) put(ctx context.Context, n *node, key, value string) error {
	return r.c.put(ctx, n.index, key, value)
}
func (r respKV) del(ctx context.Context, n *node, key string) error {
	return r.c.del(ctx, n.index, key)
}
func (r respKV) cas(ctx context.Context, n *node, key, expected, value string) (bool, error) {
	return r.c.cas(ctx, n.index, key, expected, value)
}

// protocolNames are the values of Config.Protocols.
var protocolNames = map[string][]string{"both": {"http", "resp"}, "http": {"http"}, "resp": {"resp"}}

// redisLog carries go-redis's own messages (failed dials while a node is
// down) into the harness log instead of the terminal.
type redisLog struct{ h *harness }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.h.logf("go-redis: "+format, v...)
}
