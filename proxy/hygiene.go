package proxy

import (
	"bytes"
	"slices"
	"strings"

	"github.com/outpost-edge/outpost/httphead"
)

// DefaultStripRequest are the request fields never sent upstream unless
// Options.KeepRequest names them. Each is one an origin or its framework
// may act on (rewrite the path, change the method, build absolute links
// from a host, port or scheme) while the cache key ignores it: forwarded,
// one request carrying it would store its answer under the key of an
// ordinary request, for everyone. A trusted balancer forwards its clients'
// fields as they came, so trust does not exempt them.
var DefaultStripRequest = []string{
	"X-Original-URL", "X-Rewrite-URL",
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
	"X-Forwarded-Port", "X-Forwarded-Scheme", "X-Forwarded-Server", "X-Forwarded-Ssl",
	"X-Host", "X-Original-Host", "Front-End-Https",
}

// fieldSet is a fixed set of field names, tested without allocating: a
// mask of the names' lengths turns most fields away with one bit test
// before any comparison.
type fieldSet struct {
	lengths uint64 // bit min(len(name), 63) is set for every name
	names   []string
}

// stripSet builds the set of request fields prepare removes: the default
// list less what opts keeps, plus what opts adds, plus the trace field
// (which may carry the trace token).
func stripSet(opts Options) fieldSet {
	var s fieldSet
	for _, name := range DefaultStripRequest {
		if !slices.ContainsFunc(opts.KeepRequest, func(keep string) bool { return strings.EqualFold(keep, name) }) {
			s.add(name)
		}
	}
	for _, name := range opts.StripRequest {
		s.add(name)
	}
	s.add(opts.TraceHeader)
	return s
}

func (s *fieldSet) add(name string) {
	if name == "" {
		return
	}
	s.lengths |= 1 << min(len(name), 63)
	s.names = append(s.names, name)
}

// has reports whether name is in the set, ignoring case.
func (s *fieldSet) has(name []byte) bool {
	if s.lengths&(1<<min(len(name), 63)) == 0 {
		return false
	}
	for _, n := range s.names {
		if httphead.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// upgradeAllowed reports whether every protocol a request's Upgrade field
// offers may be switched to. h2c never may: a tunnel of HTTP/2 requests
// would pass every rule, limit and the cache.
func (e *Engine) upgradeAllowed(offer []byte) bool {
	offered := false
	for item := range eachItem(offer) {
		name := protocolName(item)
		if httphead.EqualFold(name, "h2c") || !e.allowsUpgrade(name) {
			return false
		}
		offered = true
	}
	return offered
}

func (e *Engine) allowsUpgrade(name []byte) bool {
	for _, p := range e.upgrades {
		if httphead.EqualFold(name, p) {
			return true
		}
	}
	return false
}

// switchedAsAsked reports whether a 101 response switches to one protocol
// the client asked for and may have (RFC 9110 section 7.8): anything else
// must not become a tunnel.
func (e *Engine) switchedAsAsked(c *Ctx, resp *httphead.Response) bool {
	if !c.Request.Upgrade {
		return false
	}
	chosen := httphead.TrimOWS(resp.Header.Peek("Upgrade"))
	if len(chosen) == 0 || bytes.IndexByte(chosen, ',') >= 0 || !e.allowsUpgrade(protocolName(chosen)) {
		return false
	}
	for item := range eachItem(c.Request.Header.Peek("Upgrade")) {
		if bytes.EqualFold(protocolName(item), protocolName(chosen)) {
			return true
		}
	}
	return false
}

// protocolName returns the name of a protocol token, without its
// "/version".
func protocolName(p []byte) []byte {
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

// eachItem yields the non-empty items of a comma-separated list, trimmed.
func eachItem(list []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(list) > 0 {
			item := list
			if i := bytes.IndexByte(list, ','); i >= 0 {
				item, list = list[:i], list[i+1:]
			} else {
				list = nil
			}
			if item = httphead.TrimOWS(item); len(item) > 0 && !yield(item) {
				return
			}
		}
	}
}
