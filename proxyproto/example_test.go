package proxyproto_test

import (
	"net"
	"net/http"
	"time"

	"github.com/outpost-edge/outpost/proxyproto"
)

// A server behind a load balancer that sends PROXY headers sees the real
// client in r.RemoteAddr.
func ExampleWrap() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("hello " + r.RemoteAddr))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(proxyproto.Wrap(ln, 5*time.Second))
	srv.Close()
}
