package server

import (
	"net/netip"
	"testing"
	"time"
)

func TestBodyReadDeadlineEnforcesTheMinimumRateAfterTheGrace(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		name   string
		in     bodyRate
		within time.Duration // deadline - now
	}{
		{"no minimum: the read timeout", bodyRate{timeout: 60 * time.Second}, 60 * time.Second},
		{"fresh body: the grace", bodyRate{timeout: 60 * time.Second, minRate: 1024, grace: 10 * time.Second}, 10 * time.Second},
		{"grace partly used", bodyRate{timeout: 60 * time.Second, minRate: 1024, grace: 10 * time.Second, waited: 4 * time.Second}, 6 * time.Second},
		{"ahead of the rate: earned time", bodyRate{timeout: 60 * time.Second, minRate: 1024, grace: 10 * time.Second, n: 20 << 10, waited: 12 * time.Second}, 8 * time.Second},
		{"behind the rate: no time left", bodyRate{timeout: 60 * time.Second, minRate: 1024, grace: 10 * time.Second, n: 5 << 10, waited: 12 * time.Second}, -2 * time.Second},
		{"read timeout sooner than the rate", bodyRate{timeout: time.Second, minRate: 1024, grace: 10 * time.Second}, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.deadline(now).Sub(now); got != tc.within {
				t.Errorf("deadline in %v, want %v", got, tc.within)
			}
		})
	}
}

func TestPerClientConnectionLimitGroupsIPv6By64(t *testing.T) {
	s := New(Runtime{Limits: Limits{MaxConnsPerIP: 2}}, nil)
	addr := func(s string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(s), 1) }
	a1, ok1 := s.admit(addr("2001:db8:1:2::1"))
	a2, ok2 := s.admit(addr("2001:db8:1:2::ffff"))
	_, ok3 := s.admit(addr("2001:db8:1:2:aaaa::1"))
	_, other := s.admit(addr("2001:db8:1:3::1"))
	_, v4 := s.admit(addr("192.0.2.1"))
	if !ok1 || !ok2 || ok3 || !other || !v4 {
		t.Fatalf("admitted %v %v %v (same /64), %v (other /64), %v (IPv4); want true true false true true", ok1, ok2, ok3, other, v4)
	}
	a1.Release()
	if _, ok := s.admit(addr("2001:db8:1:2::9")); !ok {
		t.Error("a released slot was not reusable")
	}
	a2.Release()
}
