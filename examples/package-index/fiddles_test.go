package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/fiddle"
)

// TestFiddles runs the example's fiddles (fiddles/*.yaml) as
// "outpost test" does: every assertion must hold.
func TestFiddles(t *testing.T) {
	files, err := filepath.Glob("fiddles/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fiddles: %v", err)
	}
	for _, f := range files {
		var out strings.Builder
		ok, err := fiddle.RunFile(context.Background(), f, &out)
		if err != nil || !ok {
			t.Errorf("%s: %v\n%s", f, err, out.String())
		}
	}
}
