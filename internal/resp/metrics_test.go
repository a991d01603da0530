package resp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// The Prometheus counters of calls and errors are INFO commandstats's
// figures; the latency histogram counts the same calls. A command shows
// once it ran, its errors once one failed; a rejected command (wrong
// arity) counts in neither, as in commandstats.
func TestMetricsMatchCommandStats(t *testing.T) {
	ts := startTestServer(t, nil)
	r := ts.raw(t)
	r.send("SET k v\r\n")
	r.expect("+OK\r\n")
	r.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabc\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	r.expect("+OK\r\n$3\r\nabc\r\n")
	r.send("INCR k\r\n")
	r.expect("-ERR value is not an integer or out of range\r\n")
	r.send("GET\r\n")
	r.expect("-ERR wrong number of arguments for 'get' command\r\n")

	reg := prometheus.NewRegistry()
	reg.MustRegister(ts.srv.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	out := b.String()
	for _, line := range []string{
		"# TYPE mantisdb_resp_commands_total counter",
		"# TYPE mantisdb_resp_command_errors_total counter",
		`mantisdb_resp_commands_total{command="set"} 2`,
		`mantisdb_resp_commands_total{command="get"} 1`,
		`mantisdb_resp_commands_total{command="incr"} 1`,
		`mantisdb_resp_command_errors_total{command="incr"} 1`,
		`mantisdb_resp_command_duration_seconds_count{command="set"} 2`,
		`mantisdb_resp_command_duration_seconds_count{command="get"} 1`,
		`mantisdb_resp_command_duration_seconds_count{command="incr"} 1`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	for _, absent := range []string{
		`mantisdb_resp_command_errors_total{command="set"}`,
		`mantisdb_resp_command_errors_total{command="get"}`,
		`{command="ping"}`,
	} {
		if strings.Contains(out, absent) {
			t.Errorf("/metrics shows %q", absent)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", out)
	}
}
