package clusterfault

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// httpClient runs key-value operations against one node's HTTP API.
type httpClient struct {
	c           *http.Client
	consistency string
}

func newHTTPClient(timeout time.Duration, consistency string) *httpClient {
	return &httpClient{
		c: &http.Client{Timeout: timeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second,
		}},
		consistency: consistency,
	}
}

// errIndefinite marks a write that may or may not have been applied.
var errIndefinite = errors.New("outcome unknown")

func (h *httpClient) do(ctx context.Context, method, target string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func keyURL(addr, key string) string {
	return "http://" + addr + "/api/v1/kv/" + url.PathEscape(key)
}

// get reads key at the client's consistency: the value, or "" if absent.
func (h *httpClient) get(ctx context.Context, addr, key string) (string, error) {
	code, body, err := h.do(ctx, "GET", keyURL(addr, key)+"?consistency="+h.consistency, nil)
	if err != nil {
		return "", err
	}
	switch code {
	case http.StatusOK:
		var v struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return "", err
		}
		return v.Value, nil
	case http.StatusNotFound:
		return "", nil
	}
	return "", fmt.Errorf("GET %s: %d %s", key, code, strings.TrimSpace(string(body)))
}

// write classifies a write's answer: nil (applied), errIndefinite (maybe),
// or a definite failure.
func writeOutcome(code int, body []byte, err error) error {
	if err != nil {
		return fmt.Errorf("%w: %v", errIndefinite, err)
	}
	switch {
	case code == http.StatusOK:
		return nil
	case code >= 500:
		return fmt.Errorf("%w: %d %s", errIndefinite, code, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("definite failure: %d %s", code, strings.TrimSpace(string(body)))
}

func (h *httpClient) put(ctx context.Context, addr, key, value string) error {
	return writeOutcome(h.do(ctx, "PUT", keyURL(addr, key), map[string]string{"value": value}))
}

func (h *httpClient) del(ctx context.Context, addr, key string) error {
	return writeOutcome(h.do(ctx, "DELETE", keyURL(addr, key), nil))
}

// cas swaps key from expected ("" = absent) to value through a transaction.
func (h *httpClient) cas(ctx context.Context, addr, key, expected, value string) (bool, error) {
	cmp := map[string]any{"key": key}
	if expected == "" {
		cmp["exists"] = false
	} else {
		cmp["value"] = expected
	}
	body := map[string]any{
		"compare": []any{cmp},
		"success": []any{map[string]string{"op": "put", "key": key, "value": value}},
	}
	code, b, err := h.do(ctx, "POST", "http://"+addr+"/api/v1/txn", body)
	if err := writeOutcome(code, b, err); err != nil {
		return false, err
	}
	var ans struct {
		Succeeded bool `json:"succeeded"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return false, fmt.Errorf("%w: txn answer: %v", errIndefinite, err)
	}
	return ans.Succeeded, nil
}

// nodeFigures is what the monitor reads from a node's /metrics.
type nodeFigures struct {
	leader bool
	term   uint64
	// Election figures of the node (absent from older servers: zero).
	candidacies, preVotes, votes uint64
	detect, won                  time.Duration // last candidacy's wait without a leader; candidacy to leading
}

// figures reads a node's leader flag and term from /metrics.
func (h *httpClient) figures(ctx context.Context, addr string) (nodeFigures, error) {
	code, body, err := h.do(ctx, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		return nodeFigures{}, err
	}
	if code != http.StatusOK {
		return nodeFigures{}, fmt.Errorf("/metrics: %d", code)
	}
	var f nodeFigures
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := metricLine(line)
		if !ok {
			continue
		}
		switch name {
		case "mantisdb_cluster_leader":
			f.leader, seen = val == "1", seen+1
		case "mantisdb_cluster_term":
			t, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				if fv, ferr := strconv.ParseFloat(val, 64); ferr == nil {
					t = uint64(fv)
				}
			}
			f.term, seen = t, seen+1
		case "mantisdb_cluster_candidacies_total":
			f.candidacies = metricCount(val)
		case "mantisdb_cluster_prevote_requests_total":
			f.preVotes = metricCount(val)
		case "mantisdb_cluster_vote_requests_total":
			f.votes = metricCount(val)
		case "mantisdb_cluster_last_election_detect_seconds":
			f.detect = metricSeconds(val)
		case "mantisdb_cluster_last_election_seconds":
			f.won = metricSeconds(val)
		}
	}
	if seen != 2 {
		return nodeFigures{}, errors.New("/metrics has no cluster figures")
	}
	return f, nil
}

// metricCount parses a counter's value (printed as an integer or a float).
func metricCount(val string) uint64 {
	f, err := strconv.ParseFloat(val, 64)
	if err != nil || f < 0 {
		return 0
	}
	return uint64(f)
}

// metricSeconds parses a value in seconds.
func metricSeconds(val string) time.Duration {
	f, err := strconv.ParseFloat(val, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// metricLine splits "name{labels} value" into name and value.
func metricLine(line string) (string, string, bool) {
	if strings.HasPrefix(line, "#") {
		return "", "", false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", "", false
	}
	name := line[:sp]
	if i := strings.IndexByte(name, '{'); i >= 0 {
		name = name[:i]
	}
	return name, line[sp+1:], true
}
