package fiddle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreBounds: a directory store takes at most maxSaved fiddles;
// saving one it holds already still works.
func TestStoreBounds(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "fiddles")}
	id, err := s.Save(&Request{Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < maxSaved; i++ {
		if err := os.WriteFile(filepath.Join(s.Dir, fmt.Sprintf("%010x.json", i)), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Save(&Request{Name: "one too many"}); err == nil || !strings.Contains(err.Error(), "the most it keeps") {
		t.Errorf("save past the bound: %v", err)
	}
	if again, err := s.Save(&Request{Name: "first"}); err != nil || again != id {
		t.Errorf("saving a fiddle again: %q %v", again, err)
	}
	if _, err := s.Save(&Request{Config: strings.Repeat("x", maxFiddle)}); err == nil {
		t.Error("a fiddle over maxFiddle was saved")
	}
}
