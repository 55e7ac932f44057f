package h1

import (
	"bufio"
	"errors"
	"io"

	"github.com/outpost-edge/outpost/httphead"
)

// maxChunkLine bounds a chunk-size line, extensions included; the limit
// matches what common servers allow and stops a slow drip of extension bytes.
const maxChunkLine = 4096

// BodyReader reads one message body framed by Content-Length, chunked
// coding, or the connection closing. It is reused: Reset it for each body;
// after Reset it allocates nothing. It must not be copied after first use.
type BodyReader struct {
	br       *bufio.Reader
	left     int64 // bytes left in the body (fixed) or the current chunk
	chunked  bool
	untilEOF bool
	inChunk  bool // chunked: inside chunk data, left bytes to go
	err      error
	trailers httphead.Header
}

// Reset prepares r to read a body from br. length is the Content-Length;
// length -1 with chunked false means read until br reaches EOF.
func (r *BodyReader) Reset(br *bufio.Reader, length int64, chunked bool) {
	r.trailers.Reset()
	*r = BodyReader{br: br, left: length, chunked: chunked, trailers: r.trailers}
	r.untilEOF = !chunked && length < 0
	if !chunked && length == 0 {
		r.err = io.EOF
	}
}

// Trailers returns the trailer fields of a chunked body; they are complete
// once Read has returned io.EOF. The fields are validated like header
// fields; which of them to forward is the caller's decision.
func (r *BodyReader) Trailers() *httphead.Header { return &r.trailers }

// Read reads body bytes. It returns io.EOF at the end of the body,
// io.ErrUnexpectedEOF when the connection ends early, and an *Error (status
// 400) for malformed chunked framing. Errors are sticky.
func (r *BodyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	var n int
	switch {
	case r.untilEOF:
		n, r.err = r.br.Read(p)
	case r.chunked:
		n, r.err = r.readChunked(p)
	default:
		n, r.err = r.readFixed(p)
	}
	return n, r.err
}

func (r *BodyReader) readFixed(p []byte) (int, error) {
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.left -= int64(n)
	switch {
	case r.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *BodyReader) readChunked(p []byte) (int, error) {
	if !r.inChunk {
		if err := r.nextChunk(); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, err
	}
	if r.left == 0 {
		r.inChunk = false
		if err := r.chunkEnd(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// chunkEnd consumes the CRLF that must follow chunk data.
func (r *BodyReader) chunkEnd() error {
	b, err := r.br.Peek(2)
	if err != nil {
		return eofUnexpected(err)
	}
	if b[0] != '\r' || b[1] != '\n' {
		return badRequest("missing CRLF after chunk data")
	}
	r.br.Discard(2)
	return nil
}

// nextChunk reads a chunk-size line. A zero size starts the trailer section,
// after which the body ends with io.EOF.
func (r *BodyReader) nextChunk() error {
	line, err := readLine(r.br)
	if err != nil {
		if err == bufio.ErrBufferFull {
			return badRequest("chunk size line too long")
		}
		return eofUnexpected(err)
	}
	if len(line) > maxChunkLine {
		return badRequest("chunk size line too long")
	}
	size, err := parseChunkSize(line)
	if err != nil {
		return err
	}
	if size > 0 {
		r.left, r.inChunk = size, true
		return nil
	}
	lim := Limits{}.withDefaults()
	if err := readFields(r.br, &r.trailers, lim, 0); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Err == io.ErrUnexpectedEOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return io.EOF
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseChunkSize parses "1*HEXDIG *( BWS ; BWS name [ BWS = BWS value ] )"
// (RFC 9112 section 7.1). Whitespace is allowed only after the size's first
// ";", never between the digits and the ";".
func parseChunkSize(line []byte) (int64, error) {
	i := 0
	var n int64
	for ; i < len(line) && httphead.IsHex(line[i]); i++ {
		if i == 15 {
			return 0, badRequest("chunk size too large")
		}
		n = n<<4 | int64(unhex(line[i]))
	}
	if i == 0 {
		return 0, badRequest("invalid chunk size")
	}
	if err := checkChunkExt(line[i:]); err != nil {
		return 0, err
	}
	return n, nil
}

func unhex(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// checkChunkExt validates chunk extensions; their meaning is ignored.
func checkChunkExt(ext []byte) error {
	for len(ext) > 0 {
		if ext[0] != ';' {
			return badRequest("invalid chunk extension")
		}
		ext = skipBWS(ext[1:])
		name := tokenPrefix(ext)
		if len(name) == 0 {
			return badRequest("invalid chunk extension name")
		}
		ext = skipBWS(ext[len(name):])
		if len(ext) == 0 || ext[0] != '=' {
			continue
		}
		ext = skipBWS(ext[1:])
		n := extValueLen(ext)
		if n == 0 {
			return badRequest("invalid chunk extension value")
		}
		ext = skipBWS(ext[n:])
	}
	return nil
}

func skipBWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func tokenPrefix(b []byte) []byte {
	i := 0
	for i < len(b) && httphead.IsTokenChar(b[i]) {
		i++
	}
	return b[:i]
}

// extValueLen returns the length of the token or quoted-string at the start
// of b, or 0 when there is none.
func extValueLen(b []byte) int {
	if len(b) == 0 || b[0] != '"' {
		return len(tokenPrefix(b))
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 == len(b) || !httphead.IsFieldByte(b[i+1]) {
				return 0
			}
			i++
		case !httphead.IsFieldByte(c):
			return 0
		}
	}
	return 0
}
