package h1

import (
	"bufio"
	"bytes"
	"io"

	"github.com/outpost-edge/outpost/httphead"
)

// maxEmptyLines is how many empty lines may precede a request line; RFC 9112
// section 2.2 asks servers to ignore at least one (old clients sent a CRLF
// after a POST body).
const maxEmptyLines = 4

// ReadRequest reads one request head from br into req, which it resets
// first. scheme is how the client reached us ("http" or "https"). It returns
// io.EOF when the connection closed before any byte, an *Error for every
// rejected or truncated head, and other read errors (such as a deadline)
// wrapped. The body, if any, is left in br: see BodyReader.
func ReadRequest(br *bufio.Reader, req *httphead.Request, scheme []byte, lim Limits) error {
	req.Reset()
	lim = lim.withDefaults()
	line, err := readRequestLine(br)
	if err != nil {
		return err
	}
	if len(line) > lim.MaxHeaderBytes {
		return &Error{Status: 414, Reason: "request line too long"}
	}
	method, target, minor, e := parseRequestLine(line)
	if e != nil {
		return e
	}
	// Copy method and target out of br's buffer before reading on; the
	// host is known only after the fields and is set by the second SetLine.
	req.SetLine(method, target, nil, scheme)
	req.ProtoMajor, req.ProtoMinor = 1, minor
	if err := readFields(br, &req.Header, lim, len(line)+2); err != nil {
		return err
	}
	var f framing
	if e := f.scan(&req.Header, false); e != nil {
		return e
	}
	host, e := requestHost(req, &f)
	if e != nil {
		return e
	}
	// SetLine copies its arguments in order into the request's storage, so
	// passing slices of that storage (method, target, an authority inside
	// the target) is safe: each lands at or after where it was read from.
	req.SetLine(req.Method, req.Target, host, scheme)
	if err := req.Validate(); err != nil {
		inv := err.(*httphead.Invalid)
		return &Error{Status: inv.Status, Reason: inv.Reason}
	}
	return requestFraming(req, &f)
}

// readRequestLine skips a few empty lines and returns the request line.
func readRequestLine(br *bufio.Reader) ([]byte, error) {
	for i := 0; ; i++ {
		line, err := readLine(br)
		if err != nil {
			if err == io.EOF && i == 0 && len(line) == 0 {
				return nil, io.EOF
			}
			return nil, readErr(err, "request line", 414)
		}
		if len(line) > 0 {
			return line, nil
		}
		if i == maxEmptyLines {
			return nil, badRequest("too many empty lines before request")
		}
	}
}

// parseRequestLine splits "method SP request-target SP HTTP-version".
func parseRequestLine(line []byte) (method, target []byte, minor int, err *Error) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, nil, 0, badRequest("malformed request line")
	}
	method, rest := line[:sp], line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return nil, nil, 0, badRequest("malformed request line")
	}
	target = rest[:sp]
	if minor, err = parseVersion(rest[sp+1:]); err != nil {
		return nil, nil, 0, err
	}
	return method, target, minor, nil
}

// parseVersion accepts HTTP/1.0 and HTTP/1.1; any other well-formed version
// gets 505.
func parseVersion(v []byte) (minor int, err *Error) {
	switch string(v) {
	case "HTTP/1.1":
		return 1, nil
	case "HTTP/1.0":
		return 0, nil
	}
	if len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]) {
		return 0, &Error{Status: 505, Reason: "HTTP version not supported"}
	}
	if !bytes.Contains(bytes.ToUpper(v), []byte("HTTP/")) {
		return 0, ErrNotHTTP
	}
	return 0, badRequest("malformed HTTP version")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// requestHost picks the request's authority: from an absolute-form or
// authority-form target when there is one (it must then match the Host
// field), from the Host field otherwise (RFC 9112 section 3.2).
func requestHost(req *httphead.Request, f *framing) ([]byte, *Error) {
	if f.hosts > 1 {
		return nil, badRequest("more than one Host field")
	}
	if f.hosts == 0 && req.ProtoMinor == 1 {
		return nil, badRequest("missing Host field")
	}
	if f.hosts == 1 && !httphead.ValidAuthority(f.host) {
		return nil, badRequest("invalid Host field")
	}
	t := req.Target
	var authority []byte
	switch {
	case t[0] == '/' || string(t) == "*":
		return f.host, nil
	case req.IsMethod("CONNECT"):
		authority = t
	default:
		authority, _, _ = httphead.SplitAbsolute(t)
	}
	if f.hosts == 1 && !bytes.EqualFold(authority, f.host) {
		return nil, badRequest("Host differs from target authority")
	}
	return authority, nil
}

// requestFraming sets the body and connection flags from f.
func requestFraming(req *httphead.Request, f *framing) error {
	switch {
	case f.chunked:
		if req.ProtoMinor == 0 {
			return badRequest("Transfer-Encoding in HTTP/1.0")
		}
		req.Chunked, req.ContentLength = true, -1
	case f.lengthRaw != nil:
		req.ContentLength = f.length
	}
	req.Close = f.close || (req.ProtoMinor == 0 && !f.keepAlive)
	req.Expect100 = f.expect100 && req.ProtoMinor == 1
	req.Upgrade = f.upgr && f.upgradeField
	return nil
}
