package geoip

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// writeDB writes a small country database: 192.0.2.0/24 in DE,
// 2001:db8::/32 in FR.
func writeDB(t *testing.T) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, code := range map[string]string{"192.0.2.0/24": "DE", "2001:db8::/32": "FR"} {
		_, n, _ := net.ParseCIDR(cidr)
		rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(code)}}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCountryOfKnownAndUnknownAddresses(t *testing.T) {
	db, err := Open(writeDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for ip, want := range map[string]string{
		"192.0.2.7": "DE", "::ffff:192.0.2.8": "DE", "2001:db8::1": "FR", "198.51.100.1": "",
	} {
		for i := 0; i < 2; i++ { // the second answer comes from the cache
			if got := db.Country(netip.MustParseAddr(ip)); got != want {
				t.Errorf("%s: %q, want %q", ip, got, want)
			}
		}
	}
}

func TestOpenRefusesAFileThatIsNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.mmdb")
	os.WriteFile(path, []byte("not a database"), 0o644)
	if _, err := Open(path); err == nil {
		t.Fatal("opened garbage")
	}
}
