package h1_test

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
)

// A server reads each request head into one reused Request and answers a
// rejection with the status the error carries.
func ExampleReadRequest() {
	raw := "GET /a?b=1 HTTP/1.1\r\nHost: Example.com\r\n\r\n" +
		"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(raw))
	var req httphead.Request
	for {
		err := h1.ReadRequest(br, &req, []byte("https"), h1.Limits{})
		if e, ok := err.(*h1.Error); ok {
			fmt.Println("reject:", e.Status, e.Reason)
			return
		}
		fmt.Printf("%s %s host=%s path=%s query=%s\n", req.Method, req.Scheme, req.Host, req.Path, req.Query)
	}
	// Output:
	// GET https host=example.com path=/a query=b=1
	// reject: 400 both Content-Length and Transfer-Encoding
}
