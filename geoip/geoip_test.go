package geoip

import (
	"os"
	"path/filepath"
	"testing"
)

// Lookups in a real database are tested in the e2e module
// (TestGeoIPCountryOfKnownAndUnknownAddresses), which has the writer.

func TestOpenRefusesAFileThatIsNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.mmdb")
	os.WriteFile(path, []byte("not a database"), 0o644)
	if _, err := Open(path); err == nil {
		t.Fatal("opened garbage")
	}
}
