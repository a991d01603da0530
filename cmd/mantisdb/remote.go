package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// remoteFlags are the flags of a subcommand that talks to a running server.
type remoteFlags struct {
	target    string
	authToken string
	timeout   time.Duration
	getenv    func(string) string
}

// addRemoteFlags declares --target, --auth-token and --timeout on fs. The
// token defaults to MANTISDB_AUTH_TOKEN, like the server's, since flags
// show in ps.
func addRemoteFlags(fs *flag.FlagSet, rf *remoteFlags, getenv func(string) string) {
	rf.getenv = getenv
	fs.StringVar(&rf.target, "target", "", "base URL of a running server, e.g. http://127.0.0.1:8080")
	// The environment is read after parsing, so --help never prints the token.
	fs.StringVar(&rf.authToken, "auth-token", "",
		"the server's bearer token (default: $MANTISDB_AUTH_TOKEN; prefer it, since flags show in ps)")
	fs.DurationVar(&rf.timeout, "timeout", 0, "give up on the server after this long (0: no limit)")
}

// remote is a client of one server's HTTP API.
type remote struct {
	base   *url.URL
	token  string
	client *http.Client
}

// newRemote checks the --target URL: http or https, a host, no query.
func newRemote(rf remoteFlags) (*remote, error) {
	u, err := url.Parse(rf.target)
	if err != nil {
		return nil, fmt.Errorf("--target %q is not a URL: %v", rf.target, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--target %q must be http://host:port or https://host:port", rf.target)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--target %q must not carry a query or fragment", rf.target)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	token := rf.authToken
	if token == "" && rf.getenv != nil {
		token = rf.getenv("MANTISDB_AUTH_TOKEN")
	}
	return &remote{base: u, token: token, client: &http.Client{Timeout: rf.timeout}}, nil
}

// String is the server's address without credentials, for messages.
func (r *remote) String() string { return r.base.Redacted() }

// remoteError is an error answer of the server.
type remoteError struct {
	status  int
	code    string
	message string
}

func (e *remoteError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("the server answered %d %s", e.status, http.StatusText(e.status))
	}
	return fmt.Sprintf("the server answered %d %s: %s", e.status, e.code, e.message)
}

// do sends one request and returns the response of a 2xx answer; any
// other answer becomes a *remoteError with the server's message.
func (r *remote) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := *r.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching %s: %w", r, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer func() { _ = resp.Body.Close() }()
	rerr := &remoteError{status: resp.StatusCode}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb) == nil {
		rerr.code, rerr.message = eb.Error.Code, eb.Error.Message
	}
	return nil, rerr
}

// doJSON sends in (nil: no body) as JSON and decodes the answer into out.
func (r *remote) doJSON(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	contentType := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	resp, err := r.do(ctx, method, path, query, body, contentType)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// isNotImplemented reports whether err is the server saying its engine
// cannot do what was asked.
func isNotImplemented(err error) bool {
	var re *remoteError
	return errors.As(err, &re) && re.status == http.StatusNotImplemented
}

// encodeJSONBytes is how the HTTP API carries bytes in JSON: valid UTF-8
// as is, anything else base64 with the "base64" encoding flag.
func encodeJSONBytes(s string) (string, string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s)), "base64"
}
