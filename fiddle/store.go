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

// maxSaved bounds a store held in memory.
const maxSaved = 1000

var idPattern = regexp.MustCompile(`^[0-9a-f]{10}$`)

// ErrNotFound is returned for an unknown id.
var ErrNotFound = errors.New("no fiddle with that id")

// Save stores a fiddle and returns its id.
func (s *Store) Save(f *Request) (string, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:5])
	if s.Dir != "" {
		if err := os.MkdirAll(s.Dir, 0o700); err != nil {
			return "", fmt.Errorf("fiddle store: %w", err)
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
