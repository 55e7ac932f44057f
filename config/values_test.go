package config

import (
	"testing"
	"time"
)

func TestParseDurationAcceptsGoDurationsAndDays(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1.5s", 1500 * time.Millisecond, true},
		{"10m", 10 * time.Minute, true},
		{"0", 0, true},
		{"0s", 0, true},
		{"1d", 24 * time.Hour, true},
		{"365d", 365 * 24 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"10", 0, false},
		{"", 0, false},
		{"d", 0, false},
		{"1dd", 0, false},
		{"1d-1h", 0, false},
		{"-1d", 0, false},
		{"-1s", 0, false},
		{"1e3d", 0, false},
		{"infd", 0, false},
		{"200000d", 0, false},
		{"1 day", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSizeAcceptsBytesAndUnits(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"65536", 65536, true},
		{"0", 0, true},
		{"64KiB", 64 << 10, true},
		{"256MiB", 256 << 20, true},
		{"1GiB", 1 << 30, true},
		{"1.5GiB", 3 << 29, true},
		{"10MB", 10_000_000, true},
		{"10mb", 10_000_000, true},
		{"2 TB", 2e12, true},
		{"100B", 100, true},
		{"", 0, false},
		{"KiB", 0, false},
		{"-1", 0, false},
		{"1e3", 0, false},
		{"10 parsecs", 0, false},
		{"9000000TiB", 0, false},
	}
	for _, tt := range tests {
		var got Size
		err := got.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Size(%q) = %v, %v; want %v, ok %v", tt.in, int64(got), err, int64(tt.want), tt.ok)
		}
	}
}

func TestSizeMarshalsToWhatItParses(t *testing.T) {
	for _, s := range []Size{0, 1, 1023, 1024, 64 << 10, 10_000_000, 3 << 29, 5 << 40} {
		text, _ := s.MarshalText()
		var back Size
		if err := back.UnmarshalText(text); err != nil || back != s {
			t.Errorf("Size %d marshals to %q, which parses to %d, %v", int64(s), text, int64(back), err)
		}
	}
}

func TestKeySourceParsesEveryKind(t *testing.T) {
	tests := []struct {
		in   string
		want KeySource
		ok   bool
	}{
		{"url", KeySource{KeyURL, ""}, true},
		{"client_ip", KeySource{KeyClientIP, ""}, true},
		{"ipv6_64", KeySource{KeyIPv6Net, ""}, true},
		{"route", KeySource{KeyRoute, ""}, true},
		{"header:X-Api-Key", KeySource{KeyHeader, "X-Api-Key"}, true},
		{"cookie:session", KeySource{KeyCookie, "session"}, true},
		{"expr:req.header['a'] + ':' + req.path", KeySource{KeyExpr, "req.header['a'] + ':' + req.path"}, true},
		{"", KeySource{}, true},
		{"header:", KeySource{}, false},
		{"header:a b", KeySource{}, false},
		{"route:x", KeySource{}, false},
		{"ip", KeySource{}, false},
	}
	for _, tt := range tests {
		var got KeySource
		err := got.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("KeySource(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("KeySource(%q).String() = %q", tt.in, got.String())
		}
	}
}
