// Package malformed is a corpus of malformed and ambiguous HTTP/1.1 requests
// that Outpost must reject, each with the status it must answer. Most are
// request-smuggling or cache-poisoning vectors: messages that two parsers
// could frame differently. The h1 tests run every case through the parser;
// the server's end-to-end test sends them over TCP.
package malformed

import "strings"

// Case is one raw request and the status Outpost must answer it with.
// Cases whose head is valid but whose body framing is broken are marked
// Body; they are detected while the body is read, and answered with 400.
type Case struct {
	Name   string
	Raw    string
	Status int
	Body   bool
}

const (
	line = "GET / HTTP/1.1\r\n"
	host = "Host: example.com\r\n"
	post = "POST / HTTP/1.1\r\nHost: example.com\r\n"
)

// chunked is a POST with a chunked body made of the given chunk lines.
func chunked(body string) string {
	return post + "Transfer-Encoding: chunked\r\n\r\n" + body
}

// Cases lists the corpus. Raw requests end where the request ends; a server
// reading one must not wait for more bytes to decide.
var Cases = []Case{
	// Content-Length and Transfer-Encoding ambiguities (RFC 9112 section 6.3).
	{Name: "content-length and transfer-encoding", Raw: post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "transfer-encoding and content-length", Raw: post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "two differing content-lengths", Raw: post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", Status: 400},
	{Name: "content-length list", Raw: post + "Content-Length: 5, 5\r\n\r\nhello", Status: 400},
	{Name: "content-length with plus sign", Raw: post + "Content-Length: +5\r\n\r\nhello", Status: 400},
	{Name: "negative content-length", Raw: post + "Content-Length: -1\r\n\r\n", Status: 400},
	{Name: "hexadecimal content-length", Raw: post + "Content-Length: 0x5\r\n\r\nhello", Status: 400},
	{Name: "overflowing content-length", Raw: post + "Content-Length: 99999999999999999999\r\n\r\n", Status: 400},
	{Name: "empty content-length", Raw: post + "Content-Length:\r\n\r\n", Status: 400},
	{Name: "content-length with inner space", Raw: post + "Content-Length: 1 0\r\n\r\nhello", Status: 400},
	{Name: "chunked then identity", Raw: post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", Status: 400},
	// A request whose final coding is not chunked has no knowable length:
	// 400 (RFC 9112 section 6.3, item 4). One that ends in chunked with a
	// coding Outpost does not decode before it: 501 (section 6.1).
	{Name: "identity transfer-coding", Raw: post + "Transfer-Encoding: identity\r\n\r\n", Status: 400},
	{Name: "xchunked transfer-coding", Raw: post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "gzip before chunked", Raw: post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", Status: 501},
	{Name: "chunked with parameters", Raw: post + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "space before colon in transfer-encoding", Raw: post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "chunked twice", Raw: post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "empty transfer-coding element", Raw: post + "Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "vertical tab before chunked", Raw: post + "Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "transfer-encoding in HTTP/1.0", Raw: "POST / HTTP/1.0\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Status: 400},

	// Line syntax (RFC 9112 sections 2.2 and 5).
	{Name: "obs-fold continuation", Raw: line + host + "X-A: b\r\n c\r\n\r\n", Status: 400},
	{Name: "obs-fold hiding transfer-encoding", Raw: post + "X-A: b\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "folded transfer-encoding value", Raw: post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", Status: 400},
	{Name: "whitespace before first field", Raw: line + " " + host + "\r\n", Status: 400},
	{Name: "bare CR in field value", Raw: line + host + "X-A: b\rc\r\n\r\n", Status: 400},
	{Name: "bare LF ending a field line", Raw: line + "Host: example.com\n\r\n", Status: 400},
	{Name: "bare LF ending the request line", Raw: "GET / HTTP/1.1\n" + host + "\r\n", Status: 400},
	{Name: "bare LF ending the head", Raw: line + host + "\n", Status: 400},
	{Name: "NUL in field value", Raw: line + host + "X-A: b\x00c\r\n\r\n", Status: 400},
	{Name: "NUL in field name", Raw: line + host + "X-\x00A: b\r\n\r\n", Status: 400},
	{Name: "DEL in field value", Raw: line + host + "X-A: b\x7fc\r\n\r\n", Status: 400},
	{Name: "non-ASCII field name", Raw: line + host + "X-\xffA: b\r\n\r\n", Status: 400},
	{Name: "field line without colon", Raw: line + host + "X-A b\r\n\r\n", Status: 400},
	{Name: "empty field name", Raw: line + host + ": b\r\n\r\n", Status: 400},
	{Name: "too many empty lines before request", Raw: strings.Repeat("\r\n", 6) + line + host + "\r\n", Status: 400},

	// Host and target (RFC 9112 section 3.2).
	{Name: "missing host", Raw: line + "\r\n", Status: 400},
	{Name: "two hosts", Raw: line + host + "Host: other.example\r\n\r\n", Status: 400},
	{Name: "host with space", Raw: line + "Host: a b\r\n\r\n", Status: 400},
	{Name: "host with slash", Raw: line + "Host: example.com/x\r\n\r\n", Status: 400},
	{Name: "host with userinfo", Raw: line + "Host: user@example.com\r\n\r\n", Status: 400},
	{Name: "host with non-digit port", Raw: line + "Host: example.com:8o\r\n\r\n", Status: 400},
	{Name: "host with IPv4 in brackets", Raw: line + "Host: [1.2.3.4]\r\n\r\n", Status: 400},
	{Name: "CONNECT without host", Raw: "CONNECT :443 HTTP/1.1\r\nHost: :443\r\n\r\n", Status: 400},
	{Name: "host with unterminated IP literal", Raw: line + "Host: [::1\r\n\r\n", Status: 400},
	{Name: "absolute-form with other host", Raw: "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", Status: 400},
	{Name: "absolute-form with other host in HTTP/1.0", Raw: "GET http://a.example/ HTTP/1.0\r\nHost: b.example\r\n\r\n", Status: 400},
	{Name: "absolute-form with userinfo", Raw: "GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", Status: 400},
	{Name: "absolute-form with other scheme", Raw: "GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", Status: 400},
	{Name: "control character in target", Raw: "GET /a\x01b HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "tab in target", Raw: "GET /a\tb HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "non-ASCII in target", Raw: "GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "fragment in target", Raw: "GET /a#b HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "malformed percent-encoding", Raw: "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "asterisk-form with GET", Raw: "GET * HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "CONNECT with userinfo", Raw: "CONNECT u@example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", Status: 400},

	// Request line and version (RFC 9112 sections 2.3 and 3).
	{Name: "HTTP/2.0 request line", Raw: "GET / HTTP/2.0\r\n" + host + "\r\n", Status: 505},
	{Name: "HTTP/1.2 request line", Raw: "GET / HTTP/1.2\r\n" + host + "\r\n", Status: 505},
	{Name: "HTTP/0.9 request line", Raw: "GET /\r\n\r\n", Status: 400},
	{Name: "lowercase version", Raw: "GET / http/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "two spaces after method", Raw: "GET  / HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "space after version", Raw: "GET / HTTP/1.1 \r\n" + host + "\r\n", Status: 400},
	{Name: "leading space before method", Raw: " GET / HTTP/1.1\r\n" + host + "\r\n", Status: 400},
	{Name: "invalid byte in method", Raw: "G(T / HTTP/1.1\r\n" + host + "\r\n", Status: 400},

	// Limits.
	{Name: "huge header", Raw: line + host + "X-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", Status: 431},
	{Name: "too many headers", Raw: line + host + strings.Repeat("X-A: b\r\n", 100) + "\r\n", Status: 431},
	{Name: "huge target", Raw: "GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\n" + host + "\r\n", Status: 414},

	// Chunked body framing (RFC 9112 section 7.1), found while reading the body.
	{Name: "invalid chunk size", Raw: chunked("zz\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "negative chunk size", Raw: chunked("-5\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "space before chunk size", Raw: chunked(" 5\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "space between chunk size and extension", Raw: chunked("5 ;a=b\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "chunk size with 0x prefix", Raw: chunked("0x5\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "oversized chunk size", Raw: chunked("fffffffffffffffff\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "invalid chunk extension", Raw: chunked("5;\x01\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "unterminated quoted chunk extension", Raw: chunked("5;a=\"b\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "missing CRLF after chunk data", Raw: chunked("5\r\nhelloXX0\r\n\r\n"), Status: 400, Body: true},
	{Name: "chunk data longer than its size", Raw: chunked("3\r\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "bare LF after chunk size", Raw: chunked("5\nhello\r\n0\r\n\r\n"), Status: 400, Body: true},
	{Name: "obs-fold in trailer", Raw: chunked("5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"), Status: 400, Body: true},
	{Name: "NUL in trailer", Raw: chunked("5\r\nhello\r\n0\r\nX-T: a\x00\r\n\r\n"), Status: 400, Body: true},
}
