package storage

import "testing"

func TestPrefixSuccessor(t *testing.T) {
	cases := []struct {
		prefix, want string
		bounded      bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"ab", "ac", true},
		{"a\xff", "b", true},
		{"a\xff\xff", "b", true},
		{"\x00", "\x01", true},
		{"\xfe\xff", "\xff", true},
		{"\xff", "", false},
		{"\xff\xff", "", false},
	}
	for _, c := range cases {
		got, bounded := PrefixSuccessor(c.prefix)
		if got != c.want || bounded != c.bounded {
			t.Errorf("PrefixSuccessor(%q) = %q, %v; want %q, %v", c.prefix, got, bounded, c.want, c.bounded)
		}
		if !bounded {
			continue
		}
		// Every key with the prefix sorts below the successor, and the
		// successor itself does not start with the prefix.
		for _, suffix := range []string{"", "\x00", "\xff\xff\xff"} {
			if k := c.prefix + suffix; k >= got {
				t.Errorf("PrefixSuccessor(%q) = %q is not above the key %q", c.prefix, got, k)
			}
		}
		if len(got) >= len(c.prefix) && got[:len(c.prefix)] == c.prefix {
			t.Errorf("PrefixSuccessor(%q) = %q starts with the prefix", c.prefix, got)
		}
	}
}
