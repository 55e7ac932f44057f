package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/outpost-edge/outpost/httphead"
)

// readLine returns the next line without its CRLF. The slice points into
// br's buffer and is valid only until the next read. It rejects a bare LF
// line ending and a CR anywhere else in the line.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return line, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, badRequest("bare LF line ending")
	}
	line = line[:len(line)-2]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, badRequest("bare CR")
	}
	return line, nil
}

// readErr turns a read error inside a head into what ReadRequest returns:
// an *Error for a truncated or oversized head, the I/O error otherwise.
func readErr(err error, what string, fullStatus int) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case err == bufio.ErrBufferFull:
		return &Error{Status: fullStatus, Reason: what + " too long"}
	case err == io.EOF:
		return &Error{Status: 400, Reason: "truncated " + what, Err: io.ErrUnexpectedEOF}
	}
	return fmt.Errorf("h1: reading %s: %w", what, err)
}

// readFields reads field lines up to and including the empty line into h,
// validating each. used is the byte count already taken by the start line.
func readFields(br *bufio.Reader, h *httphead.Header, lim Limits, used int) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return readErr(err, "header", 431)
		}
		used += len(line) + 2
		if used > lim.MaxHeaderBytes {
			return &Error{Status: 431, Reason: "header too large"}
		}
		if len(line) == 0 {
			return nil
		}
		if h.Len() >= lim.MaxHeaders {
			return &Error{Status: 431, Reason: "too many header fields"}
		}
		name, value, e := parseField(line)
		if e != nil {
			return e
		}
		h.Add(name, value)
	}
}

// parseField splits "name: value" and checks both parts (RFC 9112 section 5).
func parseField(line []byte) (name, value []byte, err *Error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, badRequest("obsolete line folding")
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return nil, nil, badRequest("field line without colon")
	}
	name = line[:colon]
	if colon == 0 {
		return nil, nil, badRequest("empty field name")
	}
	if c := name[colon-1]; c == ' ' || c == '\t' {
		return nil, nil, badRequest("whitespace before colon")
	}
	if !httphead.IsToken(name) {
		return nil, nil, badRequest("invalid field name")
	}
	value = httphead.TrimOWS(line[colon+1:])
	for _, c := range value {
		if !httphead.IsFieldByte(c) {
			return nil, nil, badRequest("invalid byte in field value")
		}
	}
	return name, value, nil
}

// framing is what the fields of a head say about the message and the
// connection, gathered in one pass.
type framing struct {
	hosts                   int
	host                    []byte
	lengthRaw               []byte // first Content-Length value; nil when absent
	length                  int64
	te, chunked             bool // chunked: the final transfer coding is chunked
	coded                   bool // a response's body has codings other than chunked
	close, keepAlive, upgr  bool
	upgradeField, expect100 bool
}

// scan reads the framing fields of the head h of a request or, when
// response is set, of a response. The slices it keeps point into h.
func (f *framing) scan(h *httphead.Header, response bool) *Error {
	*f = framing{}
	var te teState
	for i := 0; i < h.Len(); i++ {
		name, value := h.Field(i)
		switch {
		case httphead.EqualFold(name, "Host"):
			f.hosts++
			f.host = value
		case httphead.EqualFold(name, "Content-Length"):
			if err := f.addLength(value); err != nil {
				return err
			}
		case httphead.EqualFold(name, "Transfer-Encoding"):
			f.te = true
			if err := te.add(value); err != nil {
				return err
			}
		case httphead.EqualFold(name, "Connection"):
			f.close = f.close || httphead.ListHas(value, "close")
			f.keepAlive = f.keepAlive || httphead.ListHas(value, "keep-alive")
			f.upgr = f.upgr || httphead.ListHas(value, "upgrade")
		case httphead.EqualFold(name, "Upgrade"):
			f.upgradeField = true
		case httphead.EqualFold(name, "Expect"):
			f.expect100 = httphead.EqualFold(value, "100-continue")
		}
	}
	if f.te {
		coded, err := te.finish(response)
		if err != nil {
			return err
		}
		f.chunked, f.coded = te.lastChunked, coded
		if f.lengthRaw != nil {
			return badRequest("both Content-Length and Transfer-Encoding")
		}
	}
	return nil
}

// addLength records one Content-Length value: digits only, no list, and
// equal to any earlier value (RFC 9112 section 6.3, items 4 and 5).
func (f *framing) addLength(v []byte) *Error {
	if f.lengthRaw != nil {
		if !bytes.Equal(f.lengthRaw, v) {
			return badRequest("differing Content-Length values")
		}
		return nil
	}
	n, ok := httphead.ParseDecimal(v)
	if !ok {
		return badRequest("invalid Content-Length")
	}
	f.lengthRaw, f.length = v, n
	return nil
}

// teState checks the Transfer-Encoding list across every field: the only
// coding Outpost decodes is chunked, applied at most once.
type teState struct {
	codings      int
	chunkedAt    int // 1-based position of the first chunked; 0 when absent
	chunkedTwice bool
	lastChunked  bool
}

func (t *teState) add(v []byte) *Error {
	for {
		item := v
		i := bytes.IndexByte(v, ',')
		if i >= 0 {
			item = v[:i]
		}
		item = httphead.TrimOWS(item)
		if len(item) == 0 {
			return badRequest("empty Transfer-Encoding element")
		}
		t.codings++
		t.lastChunked = httphead.EqualFold(item, "chunked")
		if t.lastChunked {
			t.chunkedTwice = t.chunkedTwice || t.chunkedAt > 0
			if t.chunkedAt == 0 {
				t.chunkedAt = t.codings
			}
		}
		if i < 0 {
			return nil
		}
		v = v[i+1:]
	}
}

// finish judges the whole list (RFC 9112 sections 6.1 and 6.3). A request
// must end in chunked, or its length cannot be known (400, item 4), and
// have no other coding, which Outpost cannot decode (501). A response may
// also end in another coding, its body then running until the connection
// closes (item 4), or apply codings before chunked: coded reports either,
// and the body is relayed still coded. Chunked applied twice, or before
// another coding, is refused in both (it cannot be framed again for the
// client: section 6.1 lets a message be chunked once).
func (t *teState) finish(response bool) (coded bool, err *Error) {
	switch {
	case t.chunkedTwice:
		return false, badRequest("chunked applied twice")
	case t.chunkedAt > 0 && !t.lastChunked:
		return false, badRequest("chunked is not the final transfer coding")
	case response:
		return t.codings > 1 || !t.lastChunked, nil
	case !t.lastChunked:
		return false, badRequest("request body length unknown: chunked is not the final transfer coding")
	case t.codings > 1:
		return false, &Error{Status: 501, Reason: "unsupported transfer coding"}
	}
	return false, nil
}
