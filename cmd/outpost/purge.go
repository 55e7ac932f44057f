package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/node"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// purgeCmd sends a purge to a node's admin API and prints its answer.
func purgeCmd(args []string) error { return purgeTo(os.Stdout, args) }

// purgeTo is purgeCmd writing the answer to out.
func purgeTo(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	var keys, urls listFlag
	fs.Var(&keys, "key", "surrogate key to purge (repeatable)")
	fs.Var(&urls, "url", "URL to purge, with all its variants (repeatable)")
	all := fs.Bool("all", false, "purge everything")
	soft := fs.Bool("soft", false, "mark stale instead of removing")
	admin := fs.String("admin", envOr("OUTPOST_ADMIN", "127.0.0.1:9090"), "admin API address")
	tokenFile := fs.String("token-file", "", "file holding the admin bearer token, bare or as name:token (default: $OUTPOST_ADMIN_TOKEN, else the token a node generates in its state directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("purge: unexpected argument %q", fs.Arg(0))
	}
	if len(keys)+len(urls) == 0 && !*all {
		return errors.New("purge: give --key, --url or --all")
	}
	body, err := json.Marshal(map[string]any{"keys": keys, "urls": urls, "all": *all, "soft": *soft})
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	answer, err := adminCall(*admin, *tokenFile, "POST", "/purge", "application/json", body)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	_, err = out.Write(answer)
	return err
}

// adminCall sends one request to a node's admin API, with the token of
// tokenFile (else $OUTPOST_ADMIN_TOKEN, else the node's generated one),
// and returns the answer's body; an answer other than 200 is an error
// holding it.
func adminCall(admin, tokenFile, method, path, contentType string, body []byte) ([]byte, error) {
	token := os.Getenv("OUTPOST_ADMIN_TOKEN")
	if tokenFile == "" && token == "" {
		tokenFile = generatedToken()
	}
	if tokenFile != "" {
		var err error
		if token, err = readToken(tokenFile); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequest(method, "http://"+admin+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return answer, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(answer)))
	}
	return answer, nil
}

// tokenName is the node's rule for the name part of a token line.
var tokenName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// readToken returns the first token of a token file in the node's format:
// one "name:token" or bare token a line, # comments and blank lines
// skipped. A token that itself holds a colon must be given with a name.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, tok, ok := strings.Cut(line, ":"); ok && tokenName.MatchString(name) {
			return strings.TrimSpace(tok), nil
		}
		return line, nil
	}
	return "", fmt.Errorf("no token in %s", file)
}

// generatedToken is the token file a node generates when its config
// names none, or "" when there is none.
func generatedToken() string {
	file, err := node.DefaultTokenFile()
	if err != nil {
		return ""
	}
	if _, err := os.Stat(file); err != nil {
		return ""
	}
	return file
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
