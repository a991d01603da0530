package api

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mantisdb/mantisdb/internal/kv"
)

// scanAll pages through a scan, following next, and returns the keys in
// order with the number of pages.
func scanAll(t *testing.T, c *client, prefix, start string, limit int) ([]string, int) {
	t.Helper()
	var keys []string
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if start != "" {
		q.Set("start", start)
	}
	for pages := 1; pages <= 100; pages++ {
		page := ok[pageJSON](c, "GET", "/api/v1/kv?"+q.Encode(), "")
		if len(page.Items) > limit {
			t.Fatalf("page of %d items over limit %d", len(page.Items), limit)
		}
		for _, it := range page.Items {
			keys = append(keys, it.Key)
		}
		if page.Next == nil {
			return keys, pages
		}
		if len(page.Items) != limit {
			t.Fatalf("a short page (%d of %d) with next %q", len(page.Items), limit, *page.Next)
		}
		q.Set("start", *page.Next)
	}
	t.Fatal("more than 100 pages")
	return nil, 0
}

func TestScanPaging(t *testing.T) {
	c := newClient(t, Options{})
	var all, bKeys []string
	for _, k := range []string{"a1", "a2", "b", "b0", "b1", "b2", "b3", "b4", "ba", "c", "c0"} {
		c.put(k, "v-"+k)
		all = append(all, k)
		if strings.HasPrefix(k, "b") {
			bKeys = append(bKeys, k)
		}
	}
	cases := []struct {
		name, prefix, start string
		limit               int
		want                []string
		pages               int
	}{
		{"everything in one page", "", "", 100, all, 1},
		{"everything by 3", "", "", 3, all, 4},
		{"exact multiple of the limit", "", "", 11, all, 1},
		{"prefix by 2", "b", "", 2, bKeys, 4},
		{"prefix by 1", "b", "", 1, bKeys, 7},
		{"prefix from a start inside it", "b", "b2", 2, []string{"b2", "b3", "b4", "ba"}, 2},
		{"start between keys", "b", "b11", 10, []string{"b2", "b3", "b4", "ba"}, 1},
		{"start before the prefix is clamped to it", "b", "a", 10, bKeys, 1},
		{"start after the prefix's keys", "b", "bz", 10, nil, 1},
		{"start beyond the prefix", "b", "c", 10, nil, 1},
		{"start without prefix", "", "b4", 3, []string{"b4", "ba", "c", "c0"}, 2},
		{"prefix with no keys", "zz", "", 10, nil, 1},
		{"prefix that is a whole key", "c0", "", 10, []string{"c0"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := scanAll(t, c, tc.prefix, tc.start, tc.limit)
			if !slices.Equal(got, tc.want) || pages != tc.pages {
				t.Fatalf("got %q in %d pages, want %q in %d", got, pages, tc.want, tc.pages)
			}
		})
	}
	page := ok[pageJSON](c, "GET", "/api/v1/kv?prefix=a", "")
	if len(page.Items) != 2 || page.Items[0] != (valueJSON{Key: "a1", Value: "v-a1"}) || page.Next != nil {
		t.Fatalf("default limit page: %+v", page)
	}
	// An empty page is an empty list, not null.
	rec := c.do("GET", "/api/v1/kv?prefix=zz", "")
	if !strings.Contains(rec.Body.String(), `"items":[]`) || !strings.Contains(rec.Body.String(), `"next":null`) {
		t.Fatalf("empty page body: %s", rec.Body)
	}
}

func TestScanDefaultLimit(t *testing.T) {
	c := newClient(t, Options{})
	var ops []string
	for i := range 150 {
		ops = append(ops, fmt.Sprintf(`{"op":"put","key":"k%03d","value":"v"}`, i))
	}
	ok[resultsJSON](c, "POST", "/api/v1/kv/batch", `{"atomic":true,"operations":[`+strings.Join(ops, ",")+`]}`)
	page := ok[pageJSON](c, "GET", "/api/v1/kv", "")
	if len(page.Items) != 100 || page.Next == nil || *page.Next != "k100" {
		t.Fatalf("default page: %d items, next %v", len(page.Items), page.Next)
	}
}

func TestScanBinaryKeys(t *testing.T) {
	c := newClient(t, Options{})
	keys := []string{"p\x00", "p\xfe", "p\xff", "p\xff\xff", "q"}
	for _, k := range keys {
		c.put(url.PathEscape(k), "v")
	}
	// The prefix "p\xff" has no successor byte to stop at; the scan still ends.
	page := ok[pageJSON](c, "GET", "/api/v1/kv?prefix=p%FF&limit=1", "")
	if len(page.Items) != 1 || page.Items[0].KeyEncoding != encodingBase64 || page.Next == nil || page.NextEncoding != encodingBase64 {
		t.Fatalf("binary page: %+v", page)
	}
	next, _ := base64.StdEncoding.DecodeString(*page.Next)
	if string(next) != "p\xff\xff" {
		t.Fatalf("next = %q", next)
	}
	page = ok[pageJSON](c, "GET", "/api/v1/kv?prefix=p%FF&start="+url.QueryEscape(string(next)), "")
	if len(page.Items) != 1 || page.Next != nil {
		t.Fatalf("second binary page: %+v", page)
	}
	page = ok[pageJSON](c, "GET", "/api/v1/kv?prefix=p", "")
	if len(page.Items) != 4 {
		t.Fatalf("prefix p: %+v", page)
	}
}

func TestScanPageByteBudget(t *testing.T) {
	c := newClient(t, Options{})
	big := strings.Repeat("x", kv.MaxPageBytes/2)
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		ok[keyJSON](c, "PUT", "/api/v1/kv/"+k, big, "Content-Type", "application/octet-stream")
	}
	// Two values fill the byte budget, so the page ends early with next set.
	page := ok[pageJSON](c, "GET", "/api/v1/kv?limit=10", "")
	if len(page.Items) != 2 || page.Next == nil || *page.Next != "k3" {
		t.Fatalf("page of %d items, next %v", len(page.Items), page.Next)
	}
}

func TestScanErrors(t *testing.T) {
	c := newClient(t, Options{})
	for _, q := range []string{"limit=0", "limit=-1", "limit=1001", "limit=ten", "limit=1.5", "limit="} {
		wantError(t, c.do("GET", "/api/v1/kv?"+q, ""), 400, codeInvalidArgument, "limit must be")
	}
	wantError(t, c.do("GET", "/api/v1/kv?pefix=a", ""), 400, codeInvalidArgument, `"pefix"`, "prefix, start, limit")
	wantError(t, c.do("GET", "/api/v1/kv?prefix=a&prefix=b", ""), 400, codeInvalidArgument, "2 times")
	wantError(t, c.do("GET", "/api/v1/kv?prefix=%zz", ""), 400, codeInvalidArgument, "malformed")
	wantError(t, c.do("GET", "/api/v1/kv?start="+strings.Repeat("s", 65536), ""), 400, codeInvalidArgument, "at most 65535")
	ok[pageJSON](c, "GET", "/api/v1/kv?limit=1000", "")
}
