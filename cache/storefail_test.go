package cache

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outpost-edge/outpost/storage"
)

var errDiskFull = errors.New("no space left on device")

// failingStore wraps a store: Create fails when failCreate is set, and each
// writer fails its writes once it holds failAfter bytes.
type failingStore struct {
	storage.Store
	failCreate atomic.Bool
	failAfter  int64
}

func (s *failingStore) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	if s.failCreate.Load() {
		return nil, errDiskFull
	}
	w, err := s.Store.Create(key, meta, sizeHint)
	if err != nil {
		return nil, err
	}
	return &failingWriter{Writer: w, limit: s.failAfter}, nil
}

type failingWriter struct {
	storage.Writer
	limit int64
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.limit > 0 && w.Written()+int64(len(p)) > w.limit {
		return 0, errDiskFull
	}
	return w.Writer.Write(p)
}

// TestStoreFailureIsAMiss: a store that refuses an object or fails half-way
// through it never costs the client its response.
func TestStoreFailureIsAMiss(t *testing.T) {
	payload := strings.Repeat("z", 200<<10)
	tests := []struct {
		name       string
		failCreate bool
		failAfter  int64
		chunked    bool
	}{
		{"create fails", true, 0, false},
		{"write fails with known length", false, 64 << 10, false},
		{"write fails with unknown length", false, 64 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			fs := &failingStore{Store: e.store, failAfter: tt.failAfter}
			fs.failCreate.Store(tt.failCreate)
			e.c = New(fs, Options{Clock: e.clock.Now})
			a := answer{headers: []string{"Cache-Control: max-age=60"}, body: payload}
			if tt.chunked {
				a.lieCL = -1
			}
			o := fixed(a)
			for i := range 2 {
				r := e.get(o, "/sf")
				if r.readErr != nil || r.body != payload {
					t.Fatalf("request %d: err %v, %d bytes", i, r.readErr, len(r.body))
				}
				e.waitFills()
			}
			if n := e.store.Stats().Objects; n != 0 {
				t.Errorf("%d objects stored", n)
			}
		})
	}
}
