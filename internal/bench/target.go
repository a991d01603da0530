package bench

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ParseTarget checks the address of a server to benchmark: http or https,
// a host and nothing else (no path, query, fragment or user). Unless
// allowRemote, the host must be localhost or a loopback address: the suite
// loads the server at full speed and writes and deletes keys on it.
func ParseTarget(raw string, allowRemote bool) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		return nil, fmt.Errorf("%q: want an http:// or https:// URL, e.g. http://127.0.0.1:8080", raw)
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: want an http:// or https:// URL, e.g. http://127.0.0.1:8080", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("%q: user information is not supported; use --auth-token", raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return nil, fmt.Errorf("%q: give the server's address only (scheme, host and port), without a path or query", raw)
	}
	if !allowRemote && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("refusing to benchmark %s: it is not localhost or a loopback address, and the suite "+
			"loads the server at full speed and writes and deletes keys on it; add --benchmark-allow-remote to run it anyway", u.Host)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// isLoopback reports whether host is localhost or a loopback IP. Other
// names are not resolved: a name that resolves to loopback today may not
// tomorrow.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
