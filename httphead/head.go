package httphead

// Request is a request head as the engine sees it, whatever the protocol it
// came over. Byte-slice fields point into storage owned by the Request and
// stay valid until Reset or the next Set call.
type Request struct {
	Method []byte // "GET", as sent
	Target []byte // request-target as sent ("/a?b", or absolute-form for HTTP/1.1)
	Path   []byte // path of the target normalised (see canon.go): starts with "/" (or is "*" for OPTIONS *)
	Query  []byte // the part after "?", without it, as sent; nil when absent
	Host   []byte // canonical authority (see canon.go) from the Host field, an absolute-form target or :authority
	Scheme []byte // "http" or "https": how the client reached us

	// Paths is how Path is normalised; Reset keeps it, so a session sets
	// it once.
	Paths PathPolicy

	ProtoMajor, ProtoMinor int // 1,1 for HTTP/1.1; 2,0 for HTTP/2

	Header Header

	// ContentLength is the body length, 0 when there is no body, -1 when the
	// body is chunked or (HTTP/2) of unknown length.
	ContentLength int64
	Chunked       bool // Transfer-Encoding: chunked (HTTP/1.1)
	Close         bool // the client asked to close the connection after this exchange
	Expect100     bool // Expect: 100-continue
	Upgrade       bool // Connection: upgrade with an Upgrade header (WebSocket)

	line    []byte // storage for the byte-slice fields above
	invalid string // why the path cannot be accepted (reported by Validate)
}

// Reset clears the request for reuse, keeping its storage.
func (r *Request) Reset() {
	line, hdr, paths := r.line[:0], r.Header, r.Paths
	hdr.Reset()
	*r = Request{line: line, Header: hdr, Paths: paths}
}

// SetLine sets Method, Target, Path, Query, Host and Scheme by copying them
// into the request's own storage, and makes Host and Path canonical (see
// canon.go); a path that cannot be normalised is reported by Validate.
// Arguments may point into that storage: each lands at or after where it
// was read from.
func (r *Request) SetLine(method, target, host, scheme []byte) {
	r.line = append(r.line[:0], method...)
	n1 := len(r.line)
	r.line = append(r.line, target...)
	n2 := len(r.line)
	r.line = append(r.line, host...)
	n3 := len(r.line)
	r.line = append(r.line, scheme...)
	n4 := len(r.line)
	path, query := SplitTarget(r.line[n1:n2])
	r.line = append(r.line, path...)
	r.Method = r.line[0:n1:n1]
	r.Target = r.line[n1:n2:n2]
	r.Scheme = r.line[n3:n4:n4]
	lowerASCII(r.line[n2:n3])
	host = r.line[n2:n3:n3]
	if !r.IsMethod("CONNECT") {
		host = canonicalHost(host, r.Scheme)
	}
	r.Host = host[:len(host):len(host)]
	r.Path, r.Query, r.invalid = r.line[n4:], query, ""
	if len(path) > 0 && path[0] == '/' {
		r.Path, r.invalid = normalizePath(r.Path, r.Paths)
	}
	r.Path = r.Path[:len(r.Path):len(r.Path)]
	if query != nil {
		// SplitTarget's query points into the target, which is in line.
		r.Query = r.line[n2-len(query) : n2 : n2]
	}
}

// ForwardTarget appends the request-target to send upstream: the target
// as sent when the policy says so (and it is in origin-form), otherwise
// the normalised path and the query.
func (r *Request) ForwardTarget(dst []byte) []byte {
	if r.Paths.ForwardAsSent && len(r.Target) > 0 && (r.Target[0] == '/' || string(r.Target) == "*") {
		return append(dst, r.Target...)
	}
	return r.AppendPathQuery(dst)
}

// AppendPathQuery appends the canonical path and the query ("/a/b?q"):
// the request's URL within its host, as rate limits and hashing key it.
func (r *Request) AppendPathQuery(dst []byte) []byte {
	dst = append(dst, r.Path...)
	if r.Query != nil {
		dst = append(dst, '?')
		dst = append(dst, r.Query...)
	}
	return dst
}

// SplitTarget splits an origin-form or absolute-form request-target into
// path and query (query nil when there is no "?").
func SplitTarget(t []byte) (path, query []byte) {
	// absolute-form: skip "scheme://authority"
	if len(t) > 0 && t[0] != '/' && t[0] != '*' {
		for i := 0; i+2 < len(t); i++ {
			if t[i] == ':' && t[i+1] == '/' && t[i+2] == '/' {
				rest := t[i+3:]
				j := 0
				for j < len(rest) && rest[j] != '/' && rest[j] != '?' {
					j++
				}
				t = rest[j:]
				break
			}
		}
	}
	for i, c := range t {
		if c == '?' {
			path, query = t[:i:i], t[i+1:]
			if len(path) == 0 {
				path = slash
			}
			return path, query
		}
	}
	if len(t) == 0 {
		return slash, nil
	}
	return t, nil
}

var slash = []byte("/")

func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// IsMethod reports whether the request method is m.
func (r *Request) IsMethod(m string) bool { return string(r.Method) == m }

// Response is a response head.
type Response struct {
	Status                 int
	Reason                 []byte // reason phrase as received; may be empty
	ProtoMajor, ProtoMinor int
	Header                 Header

	// ContentLength is the body length, or -1 when it is unknown (chunked,
	// or delimited by the connection closing).
	ContentLength int64
	Chunked       bool
	Close         bool // the connection closes after this response
	// TransferCodings lists the transfer codings other than a final
	// chunked that the body as received still carries ("gzip", or one
	// Outpost does not know), as Transfer-Encoding named them; empty for
	// nearly every response. Whoever relays the body must name them in
	// its own Transfer-Encoding (RFC 9112 section 6.1); the body is not
	// the representation, so it is never stored.
	TransferCodings []byte

	reason, codings []byte
}

// Reset clears the response for reuse, keeping its storage.
func (r *Response) Reset() {
	reason, codings, hdr := r.reason[:0], r.codings[:0], r.Header
	hdr.Reset()
	*r = Response{reason: reason, codings: codings, Header: hdr}
}

// SetTransferCodings copies a list of transfer codings into the
// response's own storage.
func (r *Response) SetTransferCodings(b []byte) {
	r.codings = append(r.codings[:0], b...)
	r.TransferCodings = r.codings
}

// SetReason copies the reason phrase into the response's own storage.
func (r *Response) SetReason(b []byte) {
	r.reason = append(r.reason[:0], b...)
	r.Reason = r.reason
}

// BodyAllowed reports whether a response with this status to a request with
// the given method may carry a body (RFC 9110 section 6.4.1).
func BodyAllowed(method []byte, status int) bool {
	if string(method) == "HEAD" || status == 204 || status == 304 || (status >= 100 && status < 200) {
		return false
	}
	if string(method) == "CONNECT" && status >= 200 && status < 300 {
		return false
	}
	return true
}
