package bench

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	ok := map[string]string{
		"http://127.0.0.1:8080":  "http://127.0.0.1:8080",
		"http://localhost:8080/": "http://localhost:8080",
		"https://LOCALHOST":      "https://LOCALHOST",
		"http://[::1]:9000":      "http://[::1]:9000",
		" http://127.9.9.9:1 ":   "http://127.9.9.9:1",
	}
	for raw, want := range ok {
		u, err := ParseTarget(raw, false)
		if err != nil || u.String() != want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %s", raw, u, err, want)
		}
	}
	bad := map[string]string{
		"127.0.0.1:8080":                  "want an http:// or https:// URL",
		"ftp://127.0.0.1":                 "want an http:// or https:// URL",
		"http://":                         "has no host",
		"http://127.0.0.1:8080/api/v1":    "without a path",
		"http://127.0.0.1:8080?x=1":       "without a path or query",
		"http://user:pw@127.0.0.1":        "use --auth-token",
		"http://127.0.0.1:port":           "not a URL",
		"http://10.0.0.5:8080":            "refusing to benchmark 10.0.0.5:8080",
		"http://db.example.com":           "--benchmark-allow-remote",
		"http://localhost.example.com:80": "refusing",
	}
	for raw, want := range bad {
		_, err := ParseTarget(raw, false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTarget(%q) error %v, want one saying %q", raw, err, want)
		}
	}
	if u, err := ParseTarget("https://db.example.com:8443", true); err != nil || u.Host != "db.example.com:8443" {
		t.Errorf("a remote target with allowRemote: %v, %v", u, err)
	}
}
