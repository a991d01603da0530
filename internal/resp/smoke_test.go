package resp

import "testing"

func TestSmoke(t *testing.T) {
	ts := startTestServer(t, nil)
	r := ts.raw(t)
	r.send("PING\r\nSET a 1\r\nGET a\r\nINCR a\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
	r.expect("+PONG\r\n+OK\r\n$1\r\n1\r\n:2\r\n$1\r\n2\r\n")
	c := ts.client(t, 3)
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(t.Context(), "k").Result(); err != nil || v != "v" {
		t.Fatal(v, err)
	}
}
