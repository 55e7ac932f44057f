package node

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/outpost-edge/outpost/config"
)

// adminCred is one bearer token the admin API accepts, with the name the
// purge log gives its holder. Only the token's SHA-256 digest is kept:
// comparing digests of fixed length tells a timing observer nothing about
// the token's length, and the token itself is not in memory.
type adminCred struct {
	name   string
	digest [sha256.Size]byte
}

// tokenOwner returns the name of the token that got is, or "".
func tokenOwner(creds []adminCred, got string) string {
	d := sha256.Sum256([]byte(got))
	name := ""
	for _, c := range creds { // every token is compared: no early exit to time
		if subtle.ConstantTimeCompare(d[:], c.digest[:]) == 1 {
			name = c.name
		}
	}
	return name
}

// adminTokens reads the accepted tokens: the token file, the token
// variable or, when the config names neither, the token the node
// generates at first start into DefaultTokenFile and reuses.
func (n *Node) adminTokens(c config.Admin) ([]adminCred, error) {
	switch {
	case c.TokenFile != "":
		return readTokenFile(c.TokenFile)
	case c.TokenEnv != "":
		t := os.Getenv(c.TokenEnv)
		if t == "" {
			return nil, fmt.Errorf("admin token: environment variable %s is empty", c.TokenEnv)
		}
		return []adminCred{{"default", sha256.Sum256([]byte(t))}}, nil
	}
	file, err := DefaultTokenFile()
	if err != nil {
		return nil, fmt.Errorf("admin token: %w (or set admin.token_file or admin.token_env)", err)
	}
	created, err := generateToken(file)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w (or set admin.token_file or admin.token_env)", err)
	}
	if created {
		n.Log.Warn("generated an admin API token: send it as \"Authorization: Bearer TOKEN\"; outpost purge reads it from there", "file", file)
	}
	if err := privateFile(file); err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	return readTokenFile(file)
}

func readTokenFile(file string) ([]adminCred, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	creds, err := parseTokens(string(b))
	if err != nil {
		return nil, fmt.Errorf("admin token file %s: %w", file, err)
	}
	return creds, nil
}

// StateDir is the directory where a node keeps what it generates and must
// find again after a restart: $STATE_DIRECTORY (set by systemd's
// StateDirectory=), else $XDG_STATE_HOME/outpost, else
// ~/.local/state/outpost.
func StateDir() (string, error) {
	if d, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); filepath.IsAbs(d) {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "outpost"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "outpost"), nil
}

// DefaultTokenFile is the admin token file a node whose config names no
// token generates at first start (mode 0600) and uses from then on:
// admin-token in StateDir. outpost purge reads it too.
func DefaultTokenFile() (string, error) {
	dir, err := StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "admin-token"), nil
}

// generateToken writes a new random token to file unless the file exists,
// and reports whether it did. The file appears whole or not at all (a
// link from a temporary file), so two nodes starting together share one
// token.
func generateToken(file string) (bool, error) {
	if _, err := os.Lstat(file); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)                         // crypto/rand.Read never fails
	tmp, err := os.CreateTemp(dir, ".admin-token-*") // mode 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	_, err = fmt.Fprintf(tmp, "# Outpost admin API token: send it as \"Authorization: Bearer TOKEN\".\n%s\n", hex.EncodeToString(secret))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	switch err := os.Link(tmp.Name(), file); {
	case errors.Is(err, fs.ErrExist):
		return false, nil // another node was first
	case err != nil:
		return false, err
	}
	return true, nil
}

// privateFile refuses a generated token file that another user could read
// or replace.
func privateFile(file string) error {
	fi, err := os.Lstat(file)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", file)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s is not owned by this user", file)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is open to other users (mode %#o): chmod 600 it", file, fi.Mode().Perm())
	}
	return nil
}

// tokenName is what a token's name may be made of; a line whose part
// before the first colon is not such a name is a bare token.
var tokenName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// parseTokens reads a token file: one token a line, "name:token" or a
// bare token (named "default"); blank lines and lines starting with # are
// skipped. A file without tokens is an error, not an open admin API.
func parseTokens(text string) ([]adminCred, error) {
	var creds []adminCred
	names := map[string]bool{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, tok := "default", line
		if n, t, ok := strings.Cut(line, ":"); ok && tokenName.MatchString(n) {
			name, tok = n, strings.TrimSpace(t)
		}
		switch {
		case tok == "":
			return nil, fmt.Errorf("line %d: empty token", i+1)
		case names[name]:
			return nil, fmt.Errorf("line %d: token name %q given twice", i+1, name)
		}
		names[name] = true
		creds = append(creds, adminCred{name, sha256.Sum256([]byte(tok))})
	}
	if len(creds) == 0 {
		return nil, errors.New("no token in the file")
	}
	return creds, nil
}
