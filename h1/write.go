package h1

import (
	"io"
	"net/http"
	"strconv"

	"github.com/outpost-edge/outpost/httphead"
)

// statusLines holds "HTTP/1.1 <code> <reason>\r\n" for every code that has a
// standard reason, so writing a common status line is one copy.
var statusLines = func() (lines [600][]byte) {
	for code := range lines {
		if text := http.StatusText(code); text != "" {
			lines[code] = []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n")
		}
	}
	return lines
}()

// AppendResponseHead appends an HTTP/1.1 status line, the fields of h and
// the empty line to dst. An empty reason means the standard one for status,
// and so does a reason holding a control character. The caller puts the
// framing fields (Content-Length or Transfer-Encoding, Connection) in h.
// Fields that cannot be written safely are left out (see appendFields). It
// allocates only when dst must grow.
func AppendResponseHead(dst []byte, status int, reason []byte, h *httphead.Header) []byte {
	if !validValue(reason) {
		reason = nil
	}
	if status >= 0 && status < len(statusLines) && statusLines[status] != nil &&
		(len(reason) == 0 || string(reason) == http.StatusText(status)) {
		dst = append(dst, statusLines[status]...)
	} else {
		dst = append(dst, "HTTP/1.1 "...)
		dst = strconv.AppendInt(dst, int64(status), 10)
		dst = append(dst, ' ')
		dst = append(dst, reason...)
		dst = append(dst, "\r\n"...)
	}
	dst = appendFields(dst, h)
	return append(dst, "\r\n"...)
}

// AppendRequestHead appends "method SP target SP HTTP/1.1", the fields of h
// and the empty line to dst. The caller puts Host and the framing fields in h.
// Fields that cannot be written safely are left out (see appendFields).
func AppendRequestHead(dst, method, target []byte, h *httphead.Header) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	dst = appendFields(dst, h)
	return append(dst, "\r\n"...)
}

// appendFields appends the fields of h as "Name: value\r\n" lines, leaving
// out a field whose name is not a token or whose value holds a byte RFC
// 9110 section 5.5 does not allow (CR, LF, NUL, other controls but HTAB):
// written raw, it would end the field early and start another, or a second
// message. Fields this package parsed never hold one, and config
// validation refuses them; the check keeps a field set through the Go API
// from splitting a message. It reads bytes that are being copied anyway
// and allocates only when dst must grow.
func appendFields(dst []byte, h *httphead.Header) []byte {
	for i := range h.Len() {
		name, value := h.Field(i)
		if !httphead.IsToken(name) || !validValue(value) {
			continue
		}
		dst = append(dst, name...)
		dst = append(dst, ':', ' ')
		dst = append(dst, value...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// validValue reports whether v holds only bytes a field value (or a
// reason phrase) may: visible characters, obs-text, spaces and tabs.
func validValue(v []byte) bool {
	for _, c := range v {
		if !httphead.IsFieldByte(c) {
			return false
		}
	}
	return true
}

// ChunkedWriter writes a body in chunked coding: each Write is one chunk,
// Close writes the last chunk and trailers. Reuse it with Reset; it
// allocates nothing once its scratch buffer has grown. The underlying writer
// should be buffered, as each chunk takes three writes.
type ChunkedWriter struct {
	w       io.Writer
	scratch []byte
}

// Reset directs the writer at w.
func (c *ChunkedWriter) Reset(w io.Writer) { c.w = w }

// Write writes p as one chunk. An empty p writes nothing, since a zero-size
// chunk would end the body.
func (c *ChunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.scratch = strconv.AppendInt(c.scratch[:0], int64(len(p)), 16)
	c.scratch = append(c.scratch, "\r\n"...)
	if _, err := c.w.Write(c.scratch); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	_, err = c.w.Write(c.scratch[len(c.scratch)-2:])
	return n, err
}

// Close writes the last chunk, the trailer fields (trailers may be nil) and
// the final CRLF. It does not close the underlying writer.
func (c *ChunkedWriter) Close(trailers *httphead.Header) error {
	c.scratch = append(c.scratch[:0], "0\r\n"...)
	if trailers != nil {
		c.scratch = appendFields(c.scratch, trailers)
	}
	c.scratch = append(c.scratch, "\r\n"...)
	_, err := c.w.Write(c.scratch)
	return err
}
