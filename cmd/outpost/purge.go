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
	"strings"
	"time"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// purgeCmd sends a purge to a node's admin API.
func purgeCmd(args []string) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	var keys, urls listFlag
	fs.Var(&keys, "key", "surrogate key to purge (repeatable)")
	fs.Var(&urls, "url", "URL to purge, with all its variants (repeatable)")
	all := fs.Bool("all", false, "purge everything")
	soft := fs.Bool("soft", false, "mark stale instead of removing")
	admin := fs.String("admin", envOr("OUTPOST_ADMIN", "127.0.0.1:9090"), "admin API address")
	tokenFile := fs.String("token-file", "", "file holding the admin bearer token (default: $OUTPOST_ADMIN_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(keys)+len(urls) == 0 && !*all {
		return errors.New("purge: give --key, --url or --all")
	}
	token := os.Getenv("OUTPOST_ADMIN_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	body, _ := json.Marshal(map[string]any{"keys": keys, "urls": urls, "all": *all, "soft": *soft})
	req, err := http.NewRequest("POST", "http://"+*admin+"/purge", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("purge: %s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	os.Stdout.Write(out)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
