// Package route matches requests to the config's routes. It sees only the
// canonical request (httphead's canon.go): the host in lower case without a
// trailing dot or default port, the path normalised as RFC 3986 says, so a
// rule written for /admin catches //admin, /%61dmin and /a/../admin alike,
// and a route for shop.example catches Shop.Example. and shop.example:80.
//
// A Matcher holds a route's conditions on the request head compiled for
// matching without allocation; conditions that need more than the head
// (CEL expressions) are the caller's, which has their variables.
package route

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
)

// Matcher is one route's head conditions.
type Matcher struct {
	hosts    []string // exact names
	suffixes []string // ".example.org" for "*.example.org"
	prefix   []byte
	exact    []byte
	re       *regexp.Regexp
	methods  [][]byte
	headers  []headerMatch
}

type headerMatch struct {
	name  string
	value []byte // nil: the header must only be present
}

// Compile builds the Matcher of a config route's match block.
func Compile(m *config.Match) *Matcher {
	r := &Matcher{re: m.PathRegexp}
	for _, h := range m.Hosts {
		if rest, ok := strings.CutPrefix(h, "*"); ok {
			r.suffixes = append(r.suffixes, rest)
		} else {
			r.hosts = append(r.hosts, h)
		}
	}
	if m.PathPrefix != "" {
		r.prefix = []byte(m.PathPrefix)
	}
	if m.PathExact != "" {
		r.exact = []byte(m.PathExact)
	}
	for _, x := range m.Methods {
		r.methods = append(r.methods, []byte(x))
	}
	for name, v := range m.Headers {
		hm := headerMatch{name: name}
		if v != "*" {
			hm.value = []byte(v)
		}
		r.headers = append(r.headers, hm)
	}
	return r
}

// MatchRequest checks the conditions that need only the request head.
func (m *Matcher) MatchRequest(req *httphead.Request) bool {
	if !m.MatchURL(req) {
		return false
	}
	if len(m.methods) > 0 && !m.matchMethod(req.Method) {
		return false
	}
	for _, hm := range m.headers {
		v := req.Header.Peek(hm.name)
		if v == nil || hm.value != nil && !bytes.Equal(v, hm.value) {
			return false
		}
	}
	return true
}

// MatchURL checks the route's host and path conditions, on the request's
// canonical host and normalised path.
func (m *Matcher) MatchURL(req *httphead.Request) bool {
	if len(m.hosts)+len(m.suffixes) > 0 && !m.matchHost(hostOnly(req.Host)) {
		return false
	}
	switch {
	case m.exact != nil && !bytes.Equal(req.Path, m.exact):
		return false
	case m.prefix != nil && !bytes.HasPrefix(req.Path, m.prefix):
		return false
	case m.re != nil && !m.re.Match(req.Path):
		return false
	}
	return true
}

func (m *Matcher) matchHost(host []byte) bool {
	for _, h := range m.hosts {
		if string(host) == h {
			return true
		}
	}
	for _, s := range m.suffixes {
		if len(host) > len(s) && string(host[len(host)-len(s):]) == s {
			return true
		}
	}
	return false
}

func (m *Matcher) matchMethod(method []byte) bool {
	for _, x := range m.methods {
		if bytes.Equal(method, x) {
			return true
		}
	}
	return false
}

// hostOnly strips the port from a Host value ("example.org:8080",
// "[::1]:8080").
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		if i := bytes.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}
