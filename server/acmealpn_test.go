package server_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/server"
)

// RFC 8737 section 3: a connection that negotiates acme-tls/1 is a CA's
// check of the handshake; the server closes it rather than waiting for
// an HTTP request on it.
func TestACMEALPNConnectionIsClosedAfterTheHandshake(t *testing.T) {
	ts := httptest.NewTLSServer(nil)
	cert := ts.TLS.Certificates[0]
	ts.Close()
	eng, err := proxy.New(&testApp{}, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Runtime{Engine: eng, Timeouts: server.Timeouts{Header: 10 * time.Second}}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1", "acme-tls/1"}}
	go srv.Serve(l, server.Listener{TLS: tc})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "acme-tls/1" {
		t.Fatalf("negotiated %q", p)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("the connection stayed open: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
