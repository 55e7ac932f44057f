package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/fiddle"
	"github.com/outpost-edge/outpost/node"
)

// fiddleCmd serves the Fiddle on its own, with no config: on loopback by
// default, with the admin API's Host and Origin checks and no token.
func fiddleCmd(args []string) error {
	fs := flag.NewFlagSet("fiddle", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8070", "address to serve the Fiddle on")
	dir := fs.String("dir", defaultFiddleDir(), "directory saved fiddles are kept in")
	remote := fs.Bool("allow-remote", false, "allow an address other than loopback (the Fiddle asks for no token)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*remote && !loopback(*addr) {
		return fmt.Errorf("fiddle: %s is not a loopback address: whoever reaches the Fiddle runs configs as this user, without a token (--allow-remote to do it anyway)", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("fiddle: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fiddle/", fiddle.NewHandler(&fiddle.Store{Dir: *dir}))
	mux.Handle("GET /{$}", http.RedirectHandler("/fiddle/", http.StatusFound))
	srv := &http.Server{Handler: node.LocalGuard(mux), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(os.Stderr, "outpost fiddle on http://%s/fiddle/ (saved fiddles in %s)\n", ln.Addr(), *dir)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopback reports whether addr's host is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// defaultFiddleDir is under the user's cache directory.
func defaultFiddleDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "outpost-fiddles")
	}
	return filepath.Join(d, "outpost", "fiddles")
}

// testCmd runs fiddle test files; a failed assertion makes it exit 1.
func testCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("test: FILE... is required")
	}
	failed := 0
	for _, f := range args {
		ok, err := fiddle.RunFile(context.Background(), f, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stdout, "FAIL", err)
		}
		if err != nil || !ok {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("test: %d of %d files failed", failed, len(args))
	}
	return nil
}
