package expr_test

import (
	"fmt"
	"net/netip"

	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/httphead"
)

func ExampleCompile() {
	_, err := expr.Compile(`method == "POST" && ip_in(ip, "10.0.0.0/33")`)
	fmt.Println(err)
	_, err = expr.Compile(`headers["user-agent"]`)
	fmt.Println(err)
	// Output:
	// column 31: ip_in: bad CIDR "10.0.0.0/33": want an address or a prefix such as 10.0.0.0/8
	// column 1: expression has type string; a condition must be bool
}

func ExampleProgram_Eval() {
	p := expr.MustCompile(`path.startsWith("/simple/") && !ip_in(ip, ["10.0.0.0/8", "192.168.0.0/16"]) && "user-agent" in headers`)

	req := &httphead.Request{}
	req.SetLine([]byte("GET"), []byte("/simple/pip/"), []byte("pypi.example.org"), []byte("https"))
	req.Header.AddString("User-Agent", "pip/24.0")
	var attrs guard.Attrs
	attrs.Reset(netip.MustParseAddr("203.0.113.5"), "", req)

	var v expr.Vars // one per connection, or pooled
	v.Reset(&attrs)
	ok, err := p.Eval(&v)
	fmt.Println(ok, err)
	// Output:
	// true <nil>
}
