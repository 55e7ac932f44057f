// Package h1 is Outpost's strict HTTP/1.1 codec (RFC 9112): it reads request
// and response heads from a bufio.Reader into reused httphead values, frames
// bodies (Content-Length, chunked, read-until-close), and writes heads and
// chunked bodies. It knows nothing of proxying or listeners.
//
// It is hand-written rather than built on net/http for three reasons:
//
//   - Smuggling: a proxy must reject every message another parser could frame
//     differently. net/http accepts obs-fold, bare LF line endings, and a
//     request with both Content-Length and Transfer-Encoding (it drops the
//     length), each a known request-smuggling vector when the origin
//     disagrees. Here each of those is an *Error carrying the status to answer.
//   - Allocation: net/http.ReadRequest allocates a Request, a URL, a header map
//     and a string per field: 19 allocations (1.9 KB, 2.4 µs) for a browser
//     GET with ten fields, where ReadRequest into a reused httphead.Request
//     takes none (0.63 µs; BenchmarkReadRequest vs BenchmarkNetHTTPReadRequest).
//   - Order and case: fields are kept as received, in order, so a proxy
//     forwards them unchanged.
//
// Byte slices set on heads are copies owned by the head, never views into the
// bufio.Reader's buffer, so they stay valid after the next read.
package h1
