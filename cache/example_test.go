package cache_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/cache"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage/memory"
)

// A route's origin is reached through a Fetch; the cache calls it only on
// a miss. The second request is a hit.
func ExampleCache_Serve() {
	store := memory.New(memory.Options{Capacity: 64 << 20})
	c := cache.New(store, cache.Options{})
	pol := &cache.Policy{Enabled: true, DefaultTTL: time.Minute}
	fetch := func(ctx context.Context, req *httphead.Request) (*httphead.Response, io.ReadCloser, error) {
		resp := &httphead.Response{Status: 200, ProtoMajor: 1, ProtoMinor: 1, ContentLength: 5}
		resp.Header.AddString("Cache-Control", "max-age=3600")
		return resp, io.NopCloser(strings.NewReader("hello")), nil
	}
	req := &httphead.Request{}
	req.SetLine([]byte("GET"), []byte("/greeting"), []byte("example.com"), []byte("https"))
	for range 2 {
		rep, err := c.Serve(cache.FuncOrigin(context.Background(), fetch), req, pol, nil)
		if err != nil {
			panic(err)
		}
		var body []byte
		if rep.BodyBytes != nil {
			body = rep.BodyBytes
		} else {
			body, _ = io.ReadAll(rep.Body)
		}
		fmt.Printf("%s %s | %s\n", rep.Status, body, rep.Head.Header.Get("Cache-Status"))
		rep.Close()
	}
	// Output:
	// miss hello | Outpost; fwd=uri-miss; fwd-status=200; ttl=3600
	// hit hello | Outpost; hit; ttl=3600
}
