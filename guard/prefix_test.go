package guard

import (
	"net/netip"
	"testing"
)

func TestPrefixSetMergesAndFinds(t *testing.T) {
	s := NewPrefixSet(
		netip.MustParsePrefix("192.0.2.0/25"),
		netip.MustParsePrefix("192.0.2.128/25"), // touches the one above
		netip.MustParsePrefix("192.0.2.7/32"),   // inside it
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::/0"),
		netip.Prefix{}, // skipped
	)
	if n := len(s.ips.Ranges()); n != 3 {
		t.Fatalf("%d ranges, want 3 (IPv4 blocks merged, ::/0 swallowing the other IPv6 one)", n)
	}
	tests := []struct {
		ip   string
		want bool
	}{
		{"192.0.2.0", true}, {"192.0.2.255", true}, {"192.0.3.0", false}, {"192.0.1.255", false},
		{"10.255.255.255", true}, {"11.0.0.0", false}, {"::ffff:10.0.0.1", true},
		{"2001:db8::1", true}, {"fe80::1", true}, {"fe80::1%eth0", true}, {"0.0.0.0", false}, {"1.2.3.4", false},
	}
	for _, tt := range tests {
		if got := s.Contains(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if s.Contains(netip.Addr{}) || (*PrefixSet)(nil).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the invalid address or the nil set contains something")
	}
}

func TestPrefixSetHandlesTheWholeSpace(t *testing.T) {
	s := NewPrefixSet(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
	for _, ip := range []string{"0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		if !s.Contains(netip.MustParseAddr(ip)) {
			t.Errorf("%s not in the whole space", ip)
		}
	}
}

func FuzzPrefixSet(f *testing.F) {
	f.Add("192.0.2.0/24", "192.0.2.9")
	f.Add("2001:db8::/33", "2001:db8:8000::1")
	f.Add("::ffff:0:0/96", "1.2.3.4")
	f.Add("fe80::/10", "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, prefix, addr string) {
		p, err1 := netip.ParsePrefix(prefix)
		a, err2 := netip.ParseAddr(addr)
		if err1 != nil || err2 != nil {
			return
		}
		want := p.Contains(a.Unmap().WithZone("")) // a zone is ignored
		if got := NewPrefixSet(p).Contains(a); got != want {
			t.Fatalf("set of %v contains %v = %v, netip says %v", p, a, got, want)
		}
	})
}
