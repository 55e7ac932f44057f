package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/outpost-edge/outpost/storage"
)

// While clients store and read objects, files are removed, truncated and
// have header bytes flipped behind the store's back. A read may miss or
// fail, but whatever it returns must be the bytes that were stored.
func TestDamageDuringUseNeverServesWrongBytes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 8 << 20})
	const keys, rounds = 16, 300
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() { // writers: each key's body is derived from its version
			for i := range rounds {
				key := fmt.Sprintf("k%d", (g+i)%keys)
				version := fmt.Sprintf("%s.%d.%d", key, g, i)
				put(s, key, []byte(version), body(version, 100+i*50))
			}
		})
		wg.Go(func() { // readers
			for i := range rounds * 2 {
				if err := readVersioned(s, fmt.Sprintf("k%d", (g*5+i)%keys)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() { // vandal
		rng := rand.New(rand.NewPCG(3, 4))
		for range rounds {
			objs, _ := files(t, dir)
			if len(objs) == 0 {
				continue
			}
			name := objs[rng.IntN(len(objs))]
			switch rng.IntN(3) {
			case 0:
				os.Remove(name)
			case 1:
				os.Truncate(name, rng.Int64N(6000))
			case 2:
				if f, err := os.OpenFile(name, os.O_WRONLY, 0); err == nil {
					f.WriteAt([]byte{byte(rng.Uint32())}, rng.Int64N(fixedLen+10))
					f.Close()
				}
			}
		}
	})
	wg.Wait()
	if st := s.Stats(); st.Bytes > st.Capacity {
		t.Fatalf("Stats() = %+v", st)
	}
}

// readVersioned reads key and checks its body against its metadata, the
// version it was stored with. Misses and read errors are fine.
func readVersioned(s storage.Store, key string) error {
	o, err := s.Lookup(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("Lookup(%q): %w", key, err)
	}
	defer o.Close()
	got, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil {
		return nil // truncated behind the store's back: an error, not bytes
	}
	if want := body(string(o.Meta()), len(got)); !bytes.Equal(got, want) || int64(len(got)) != o.Size() {
		return fmt.Errorf("%q (version %q) served %d wrong bytes", key, o.Meta(), len(got))
	}
	return nil
}
