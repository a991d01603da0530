package main

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// intValue is an integer flag within [min, max].
type intValue struct {
	p        *int
	min, max int
}

func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	if n < v.min || n > v.max {
		return fmt.Errorf("%d is outside %d..%d", n, v.min, v.max)
	}
	*v.p = n
	return nil
}

// Type names the value in --help.
func (v *intValue) Type() string { return "int" }

// sizeValue is a byte size flag within [min, max], with unit suffixes.
type sizeValue struct {
	p        *int64
	min, max int64
}

func (v *sizeValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return formatSize(*v.p)
}

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n < v.min || n > v.max {
		return fmt.Errorf("%s is outside %s..%s", formatSize(n), formatSize(v.min), formatSize(v.max))
	}
	*v.p = n
	return nil
}

// sizeUnits are the accepted suffixes, longest first so "MiB" is not read
// as "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// parseSize reads "1048576", "64MB", "1.5GiB" (case-insensitive).
func parseSize(s string) (int64, error) {
	num := strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	bad := fmt.Errorf("%q is not a size (want e.g. 1048576, 64MB or 1GiB)", s)
	if num == "" {
		return 0, bad
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, bad
	}
	if f < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	if f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(f * float64(mult)), nil
}

// formatSize prints n in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// Type names the value in --help.
func (v *sizeValue) Type() string { return "size" }

// choiceValue is a string flag from a fixed list.
type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *choiceValue) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	if !slices.Contains(v.choices, s) {
		return fmt.Errorf("%q is not one of %s", s, strings.Join(v.choices, ", "))
	}
	*v.p = s
	return nil
}

// Type names the value in --help.
func (v *choiceValue) Type() string { return strings.Join(v.choices, "|") }

// durationValue is a duration flag of at least min.
type durationValue struct {
	p   *time.Duration
	min time.Duration
}

func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (want e.g. 100ms, 30s)", s)
	}
	if d < v.min {
		return fmt.Errorf("%v is below the minimum of %v", d, v.min)
	}
	*v.p = d
	return nil
}

// Type names the value in --help.
func (v *durationValue) Type() string { return "duration" }

// levelValue is a log level flag.
type levelValue struct{ p *slog.Level }

var levels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

func (v *levelValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

func (v *levelValue) Set(s string) error {
	l, ok := levels[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	*v.p = l
	return nil
}

// Type names the value in --help.
func (v *levelValue) Type() string { return "debug|info|warn|error" }
