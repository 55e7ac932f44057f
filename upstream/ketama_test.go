package upstream

import (
	"fmt"
	"math"
	"testing"
)

// The expected values come from an independent implementation of the
// ring's description (40·weight MD5 digests of "addr-i", four little-endian
// points per digest, first point at or after the key's hash), written in
// Python. With equal weights that is libketama's ring.
// HashKey("") is checkable by hand: MD5("") starts d4 1d 8c d9, which read
// little-endian is 0xd98c1dd4 = 3649838548.
var ketamaTests = []struct {
	servers []*Server
	key     string
	hash    uint64
	want    string
}{
	{ketamaEqual, "", 3649838548, "10.0.0.2:11211"},
	{ketamaEqual, "a", 3111502092, "10.0.0.3:11211"},
	{ketamaEqual, "foo", 3675831724, "10.0.0.3:11211"},
	{ketamaEqual, "/simple/requests/", 4030920256, "10.0.0.1:11211"},
	{ketamaEqual, "/packages/ab/cd/x.whl", 710838433, "10.0.0.3:11211"},
	{ketamaEqual, "192.0.2.7", 3633564905, "10.0.0.2:11211"},
	{ketamaEqual, "user-42", 129773942, "10.0.0.2:11211"},
	{ketamaEqual, "session=abc", 4130235663, "10.0.0.1:11211"},
	{ketamaWeighted, "", 3649838548, "origin-b:80"},
	{ketamaWeighted, "a", 3111502092, "origin-a:80"},
	{ketamaWeighted, "foo", 3675831724, "origin-b:80"},
	{ketamaWeighted, "/simple/requests/", 4030920256, "origin-a:80"},
	{ketamaWeighted, "x", 1642386589, "origin-b:80"},
}

var (
	ketamaEqual    = servers("10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211")
	ketamaWeighted = []*Server{{Addr: "origin-a:80", Weight: 1}, {Addr: "origin-b:80", Weight: 3}}
)

func TestKetamaPlacesKeysAsLibketama(t *testing.T) {
	for _, tt := range ketamaTests {
		b := newBackend(t, Config{Policy: Ketama{}}, tt.servers)
		h := HashKey([]byte(tt.key))
		if h != tt.hash {
			t.Errorf("HashKey(%q) = %d, want %d", tt.key, h, tt.hash)
		}
		var it Iter
		if got := pick(t, b, &it, h); got != tt.want {
			t.Errorf("key %q: server %s, want %s", tt.key, got, tt.want)
		}
	}
}

func TestKetamaRingHas160PointsPerWeightUnit(t *testing.T) {
	for _, tt := range []struct {
		servers []*Server
		points  int
	}{
		{ketamaEqual, 480},    // 160 per server
		{ketamaWeighted, 640}, // 40 and 120 digests
	} {
		if got := len(Ketama{}.Build(tt.servers).(*ring).hashes); got != tt.points {
			t.Errorf("%d servers: %d points, want %d", len(tt.servers), got, tt.points)
		}
	}
}

func TestKetamaAddingAServerMovesAboutOneInNPlusOneKeys(t *testing.T) {
	for _, n := range []int{3, 10, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var list []*Server
			for i := range n {
				list = append(list, &Server{Addr: fmt.Sprintf("10.1.0.%d:80", i+1)})
			}
			before := newBackend(t, Config{Policy: Ketama{}}, list)
			after := newBackend(t, Config{Policy: Ketama{}}, append(list, &Server{Addr: "10.1.9.9:80"}))
			const keys = 50_000
			moved := 0
			var it Iter
			for k := range keys {
				h := HashKey(fmt.Appendf(nil, "/packages/%d.tar.gz", k))
				was, is := pick(t, before, &it, h), pick(t, after, &it, h)
				if was != is {
					moved++
					if is != "10.1.9.9:80" {
						t.Fatalf("key %d moved from %s to %s, not to the new server", k, was, is)
					}
				}
			}
			got, want := float64(moved)/keys, 1/float64(n+1)
			t.Logf("moved %.4f of keys, ideal %.4f", got, want)
			if math.Abs(got-want) > want*0.35 {
				t.Fatalf("moved %.4f of keys, want about %.4f", got, want)
			}
		})
	}
}

func TestKetamaRetryWalksOnToTheNextServer(t *testing.T) {
	b := newBackend(t, Config{Policy: Ketama{}}, ketamaEqual)
	h := HashKey([]byte("foo"))
	first := candidates(t, b, h)
	if len(first) != 3 || first[0] != "10.0.0.3:11211" {
		t.Fatalf("candidates %v, want all three starting with the key's owner", first)
	}
	// With the owner down, the key goes to the owner's successor: the
	// second candidate of the healthy ring.
	b.SetHealthy(first[0], false)
	var it Iter
	if got := pick(t, b, &it, h); got != first[1] {
		t.Fatalf("owner down: %s, want its successor %s", got, first[1])
	}
}

func TestKetamaIndexedLookupAgreesWithPlainSearch(t *testing.T) {
	var list []*Server
	for i := range 40 {
		list = append(list, &Server{Addr: fmt.Sprintf("10.2.0.%d:80", i), Weight: 1 + i%4})
	}
	b := newBackend(t, Config{Policy: Ketama{}}, list)
	r := b.set.Load().primary.sel.(*ring)
	c := Candidates{servers: b.Servers(), tried: make([]uint64, 1)}
	keys := []uint64{0, 1, math.MaxUint32, uint64(r.hashes[0]), uint64(r.hashes[len(r.hashes)-1]), uint64(r.hashes[len(r.hashes)-1]) + 1}
	for k := range uint64(20_000) {
		keys = append(keys, k*0x9e3779b9&math.MaxUint32)
	}
	for _, k := range keys {
		start := sortSearch(r.hashes, uint32(k))
		want := int(r.owners[start%len(r.hashes)])
		c.key = k
		if got := r.Select(&c); got != want {
			t.Fatalf("key %#x: server %d, want %d", k, got, want)
		}
	}
}
