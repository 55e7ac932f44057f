package fiddle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
)

// Store keeps saved fiddles under short ids: in a directory (one JSON
// file each), or in memory when Dir is "". An id is derived from the
// fiddle's content, so saving the same fiddle twice gives the same id.
type Store struct {
	Dir string

	mu  sync.Mutex
	mem map[string][]byte
}

// Bounds of a store: fiddles in all, bytes in all (a directory's), bytes
// of one fiddle.
const (
	maxSaved      = 1000
	maxSavedBytes = 100 << 20
	maxFiddle     = 2 * maxBody // indented JSON of an API body
)

var (
	idPattern = regexp.MustCompile(`^[0-9a-f]{10}$`)
	idFile    = regexp.MustCompile(`^[0-9a-f]{10}\.json$`)
)

// ErrNotFound is returned for an unknown id.
var ErrNotFound = errors.New("no fiddle with that id")

// Save stores a fiddle and returns its id.
func (s *Store) Save(f *Request) (string, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	if len(b) > maxFiddle {
		return "", fmt.Errorf("fiddle store: the fiddle takes %d bytes, more than %d", len(b), maxFiddle)
	}
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:5])
	if s.Dir != "" {
		s.mu.Lock() // the room check and the write go together
		defer s.mu.Unlock()
		if err := os.MkdirAll(s.Dir, 0o700); err != nil {
			return "", fmt.Errorf("fiddle store: %w", err)
		}
		if err := s.room(id, len(b)); err != nil {
			return "", err
		}
		tmp := filepath.Join(s.Dir, id+".json.tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return "", fmt.Errorf("fiddle store: %w", err)
		}
		return id, os.Rename(tmp, filepath.Join(s.Dir, id+".json"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		s.mem = map[string][]byte{}
	}
	if _, ok := s.mem[id]; !ok && len(s.mem) >= maxSaved {
		return "", fmt.Errorf("fiddle store: %d fiddles saved, the most this node keeps in memory", maxSaved)
	}
	s.mem[id] = b
	return id, nil
}

// Load returns a saved fiddle.
func (s *Store) Load(id string) (*Request, error) {
	if !idPattern.MatchString(id) {
		return nil, ErrNotFound
	}
	var b []byte
	if s.Dir != "" {
		var err error
		if b, err = os.ReadFile(filepath.Join(s.Dir, id+".json")); errors.Is(err, os.ErrNotExist) {
			return nil, ErrNotFound
		} else if err != nil {
			return nil, fmt.Errorf("fiddle store: %w", err)
		}
	} else {
		s.mu.Lock()
		b = s.mem[id]
		s.mu.Unlock()
		if b == nil {
			return nil, ErrNotFound
		}
	}
	var f Request
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("fiddle store: %s: %w", id, err)
	}
	return &f, nil
}

// room checks that a directory store can take one more fiddle of n bytes
// (saving one it holds already takes no room).
func (s *Store) room(id string, n int) error {
	if _, err := os.Stat(filepath.Join(s.Dir, id+".json")); err == nil {
		return nil
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return fmt.Errorf("fiddle store: %w", err)
	}
	count, total := 0, int64(n)
	for _, e := range entries {
		if !idFile.MatchString(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			count++
			total += fi.Size()
		}
	}
	if count >= maxSaved || total > maxSavedBytes {
		return fmt.Errorf("fiddle store: %s holds %d fiddles (%d bytes with this one), the most it keeps is %d fiddles and %d bytes", s.Dir, count, total, maxSaved, maxSavedBytes)
	}
	return nil
}
