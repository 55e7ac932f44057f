package h1

import (
	"bufio"
	"bytes"
	"io"

	"github.com/outpost-edge/outpost/httphead"
)

// ReadResponse reads one response head from an origin into resp, which it
// resets first. reqMethod is the method of the request it answers (a
// response to HEAD has no body). Interim 1xx responses, 101 included, are
// returned as they are: the caller loops or switches protocols.
//
// It returns io.EOF when the connection closed before any byte (an idle
// connection the origin closed), an *Error with Status 502 for a malformed
// or ambiguous head, and other read errors wrapped.
func ReadResponse(br *bufio.Reader, resp *httphead.Response, reqMethod []byte, lim Limits) error {
	resp.Reset()
	lim = lim.withDefaults()
	line, err := readLine(br)
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return io.EOF
		}
		return asOrigin(readErr(err, "status line", 502))
	}
	if err := parseStatusLine(line, resp); err != nil {
		return asOrigin(err)
	}
	if err := readFields(br, &resp.Header, lim, len(line)+2); err != nil {
		return asOrigin(err)
	}
	return asOrigin(responseFraming(resp, reqMethod))
}

// asOrigin gives a head error from an origin the status a proxy answers
// with. It keeps nil nil.
func asOrigin(err error) error {
	if e, ok := err.(*Error); ok {
		e.Status = 502
	}
	return err
}

// parseStatusLine reads "HTTP/1.x SP 3DIGIT [SP reason]". The reason and the
// space before it may be missing, as many origins send them so.
func parseStatusLine(line []byte, resp *httphead.Response) error {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' ||
		(line[7] != '0' && line[7] != '1') {
		return badRequest("malformed status line")
	}
	code := line[9:12]
	if !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) || code[0] == '0' {
		return badRequest("malformed status code")
	}
	var reason []byte
	if len(line) > 12 {
		if line[12] != ' ' {
			return badRequest("malformed status line")
		}
		reason = line[13:]
	}
	for _, c := range reason {
		if !httphead.IsFieldByte(c) {
			return badRequest("invalid byte in reason phrase")
		}
	}
	resp.ProtoMajor, resp.ProtoMinor = 1, int(line[7]-'0')
	resp.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	resp.SetReason(reason)
	return nil
}

// responseFraming sets ContentLength, Chunked and Close following RFC 9112
// section 6.3.
func responseFraming(resp *httphead.Response, reqMethod []byte) error {
	var f framing
	if e := f.scan(&resp.Header, true); e != nil {
		return e
	}
	if f.te && resp.ProtoMinor == 0 {
		return badRequest("Transfer-Encoding in HTTP/1.0")
	}
	resp.Close = f.close || (resp.ProtoMinor == 0 && !f.keepAlive)
	switch {
	case !httphead.BodyAllowed(reqMethod, resp.Status):
		resp.ContentLength = 0
	case f.coded:
		setCodings(resp)
		resp.Chunked, resp.ContentLength = f.chunked, -1
		resp.Close = resp.Close || !f.chunked
	case f.chunked:
		resp.Chunked, resp.ContentLength = true, -1
	case f.lengthRaw != nil:
		resp.ContentLength = f.length
	default:
		resp.ContentLength, resp.Close = -1, true
	}
	return nil
}

// setCodings records in resp the transfer codings of its body other than a
// final chunked, as the Transfer-Encoding fields list them.
func setCodings(resp *httphead.Response) {
	var list []byte
	resp.Header.Values("Transfer-Encoding", func(v []byte) bool {
		if len(list) > 0 {
			list = append(list, ", "...)
		}
		list = append(list, v...)
		return true
	})
	if i := bytes.LastIndexByte(list, ','); i >= 0 && httphead.EqualFold(httphead.TrimOWS(list[i+1:]), "chunked") {
		list = list[:i]
	}
	resp.SetTransferCodings(list)
}
