package proxyproto_test

import (
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/outpost-edge/outpost/proxyproto"
)

// A server behind a load balancer that sends PROXY headers sees the real
// client in r.RemoteAddr. Only the balancers' network may connect.
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
	go srv.Serve(proxyproto.Wrap(ln, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, 5*time.Second))
	srv.Close()
}
