package dumpfile

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func sample() []Entry {
	return []Entry{
		{Key: "\x00", Value: "nul key"},
		{Key: "a", Value: ""},
		{Key: "b\xff\xfe", Value: "\x00\x01\x02binary", ExpiresAt: time.UnixMilli(1767225600123)},
		{Key: "user:1", Value: `quote " and <html> & newline` + "\n"},
	}
}

func write(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Source: "test", Expiries: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(data []byte) ([]Entry, error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

func TestRoundTripIsBinarySafe(t *testing.T) {
	data := write(t, sample())
	got, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	if len(got) != len(want) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key || got[i].Value != want[i].Value || !got[i].ExpiresAt.Equal(want[i].ExpiresAt) {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if !strings.Contains(string(data), `"key_encoding":"base64"`) || !strings.Contains(string(data), `"expires_at_ms":1767225600123`) {
		t.Errorf("dump lacks base64 keys or the absolute expiry:\n%s", data)
	}
}

func TestWriterRefusesDisorder(t *testing.T) {
	w, err := NewWriter(io.Discard, Header{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Entry{Key: "b"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b", "a"} {
		if err := w.Write(Entry{Key: k}); err == nil {
			t.Errorf("key %q after \"b\" accepted", k)
		}
	}
}

// TestDamageIsFound cuts, reorders and alters a dump; each must fail with
// ErrFormat, never read as a shorter or different database.
func TestDamageIsFound(t *testing.T) {
	data := write(t, sample())
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1] // SplitAfter leaves "" after the last newline
	cases := map[string]string{
		"empty":            "",
		"no trailer":       strings.Join(lines[:len(lines)-1], ""),
		"cut mid line":     string(data[:len(data)-10]),
		"entry dropped":    lines[0] + strings.Join(lines[2:], ""),
		"entries swapped":  lines[0] + lines[2] + lines[1] + strings.Join(lines[3:], ""),
		"value altered":    strings.Replace(string(data), "nul key", "nul kez", 1),
		"data after end":   string(data) + lines[1],
		"unknown field":    strings.Replace(string(data), `"value":""`, `"value":"","x":1`, 1),
		"not a dump":       "{\"key\":\"a\",\"value\":\"b\"}\n",
		"future version":   strings.Replace(string(data), `"version":1`, `"version":2`, 1),
		"negative expiry":  strings.Replace(string(data), `1767225600123`, `-5`, 1),
		"bad base64":       strings.Replace(string(data), `"Yv/+"`, `"Yv*+"`, 1),
		"unknown encoding": strings.Replace(string(data), `"key_encoding":"base64"`, `"key_encoding":"hex"`, 1),
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			if input == string(data) {
				t.Fatal("the case did not change the dump")
			}
			_, err := readAll([]byte(input))
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("err = %v, want ErrFormat", err)
			}
		})
	}
}

// FuzzReader feeds arbitrary input to the reader: it never panics, and
// whatever it accepts whole writes back to a dump that reads the same.
func FuzzReader(f *testing.F) {
	f.Add(write(f, sample()))
	f.Add([]byte("{\"format\":\"mantisdb-dump\",\"version\":1}\n{\"end\":true,\"keys\":0,\"crc32c\":0}\n"))
	f.Add([]byte("not a dump"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := readAll(data)
		if err != nil {
			return
		}
		again, err := readAll(write(t, entries))
		if err != nil {
			t.Fatalf("a dump written from accepted entries is refused: %v", err)
		}
		if len(again) != len(entries) {
			t.Fatalf("%d entries read back, %d written", len(again), len(entries))
		}
		for i := range entries {
			if again[i].Key != entries[i].Key || again[i].Value != entries[i].Value || !again[i].ExpiresAt.Equal(entries[i].ExpiresAt) {
				t.Fatalf("entry %d changed: %+v -> %+v", i, entries[i], again[i])
			}
		}
	})
}
