package disk

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestStoreAgreesWithAMapAcrossReopens runs random puts, deletes, metadata
// updates (in place and by copy), aborted fills and restarts against a map,
// with room for everything so nothing is evicted.
func TestStoreAgreesWithAMapAcrossReopens(t *testing.T) {
	type object struct {
		meta string
		size int
		gen  int
	}
	dir := t.TempDir()
	opts := Options{Capacity: 1 << 30}
	s := openStore(t, dir, opts)
	model := map[string]object{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 1500 {
		key := fmt.Sprintf("k%d", rng.IntN(40))
		switch op := rng.IntN(100); {
		case op < 40:
			o := object{meta: fmt.Sprintf("m%d", i), size: rng.IntN(20_000), gen: i}
			mustPut(t, s, key, []byte(o.meta), body(fmt.Sprint(key, o.gen), o.size))
			model[key] = o
		case op < 50:
			w, err := s.Create(key, []byte("aborted"), -1)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(body("aborted", rng.IntN(5000)))
			w.Abort()
		case op < 60:
			_, had := model[key]
			if got := s.Delete(key); got != had {
				t.Fatalf("op %d: Delete(%q) = %v, want %v", i, key, got, had)
			}
			delete(model, key)
		case op < 75:
			o, had := model[key]
			meta := fmt.Sprintf("updated %d %s", i, make([]byte, rng.IntN(800)))
			err := s.UpdateMeta(key, []byte(meta))
			if (err == nil) != had {
				t.Fatalf("op %d: UpdateMeta(%q): %v, stored=%v", i, key, err, had)
			}
			if had {
				o.meta = meta
				model[key] = o
			}
		case op < 77:
			s.Close()
			s = openStore(t, dir, opts)
		default:
			if o, ok := model[key]; ok {
				mustHave(t, s, key, []byte(o.meta), body(fmt.Sprint(key, o.gen), o.size))
			} else {
				mustMiss(t, s, key)
			}
		}
	}
	n := 0
	s.Range(func(key string, meta []byte) bool {
		n++
		if o, ok := model[key]; !ok || o.meta != string(meta) {
			t.Fatalf("Range gave %q with meta %.20q; the model has %v", key, meta, ok)
		}
		return true
	})
	if n != len(model) || s.Stats().Objects != int64(len(model)) {
		t.Fatalf("Range visited %d, Stats says %d, the model holds %d", n, s.Stats().Objects, len(model))
	}
	if _, tmp := files(t, dir); len(tmp) != 0 {
		t.Fatalf("tmp/ holds %v", tmp)
	}
}
