package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/outpost-edge/outpost/client"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/pool"
)

// A proxy fills one upstream request, sends it, and reads the body to the
// end so the connection goes back to the pool for the next request.
func ExampleTransport_RoundTrip() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	defer origin.Close()

	conns := pool.New(pool.Config{MaxIdle: 64})
	defer conns.Close()
	tr := &client.Transport{Pool: conns}

	var req httphead.Request
	var resp httphead.Response
	for _, path := range []string{"/a", "/b"} {
		req.Reset()
		req.SetLine([]byte("GET"), []byte(path), []byte("origin.example"), []byte("http"))
		req.Header.AddString("Host", "origin.example")
		body, err := tr.RoundTrip(context.Background(), origin.Listener.Addr().String(), &req, nil, &resp)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(body)
		body.Close()
		fmt.Println(resp.Status, string(b))
	}
	s := conns.Totals()
	fmt.Printf("dials=%d reuses=%d\n", s.Dials, s.Reuses)
	// Output:
	// 200 hello from /a
	// 200 hello from /b
	// dials=1 reuses=1
}
