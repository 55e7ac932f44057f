package server

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// deadliner is what a request body's reads are bounded through: the
// connection for HTTP/1.1, the stream for HTTP/2.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// bodyRate bounds the reads of one request body: each read must end within
// the body read timeout, and sooner when the body's average rate would
// otherwise fall below the minimum once the grace has passed (slow POST).
type bodyRate struct {
	n       int64         // bytes read
	waited  time.Duration // time spent blocked reading
	timeout time.Duration
	minRate float64 // bytes per second; 0: no minimum
	grace   time.Duration
}

func (b *bodyRate) reset(rt *runtime) {
	b.n, b.waited, b.timeout = 0, 0, rt.timeouts.BodyRead
	b.minRate, b.grace = float64(max(rt.limits.MinBodyRate, 0)), rt.timeouts.BodyRateGrace
}

// deadline returns when a read starting at now must end. Only time spent
// in reads counts towards the rate, so an origin slow to take the upload
// does not make the client look slow.
func (b *bodyRate) deadline(now time.Time) time.Time {
	d := now.Add(b.timeout)
	if b.minRate > 0 {
		allowed := max(b.grace, time.Duration(float64(b.n)/b.minRate*float64(time.Second)))
		if r := now.Add(allowed - b.waited); r.Before(d) {
			d = r
		}
	}
	return d
}

// read reads from r under the deadline, set through d. A read cut by it
// is the client's fault: a 408 error wrapping os.ErrDeadlineExceeded.
func (b *bodyRate) read(s *Server, d deadliner, r io.Reader, p []byte) (int, error) {
	now := time.Now()
	_ = d.SetReadDeadline(b.deadline(now))
	n, err := r.Read(p)
	b.waited += time.Since(now)
	b.n += int64(n)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.SlowClients.Add(1)
		err = proxy.Errorf(408, proxy.FromDownstream, "request body too slow", err)
	}
	return n, err
}

// rateSession is an HTTP/2 stream whose request body is read under a
// bodyRate, like an HTTP/1.1 one.
type rateSession struct {
	proxy.Session
	srv  *Server
	d    deadliner
	body io.Reader
	rate bodyRate
}

// withBodyRate returns sess with its body read under rt's body limits,
// when it has a body and can bound its reads.
func (s *Server) withBodyRate(sess proxy.Session, rt *runtime) proxy.Session {
	d, ok := sess.(deadliner)
	if !ok || sess.Request().ContentLength == 0 {
		return sess
	}
	rs := &rateSession{Session: sess, srv: s, d: d, body: sess.Body()}
	rs.rate.reset(rt)
	return rs
}

func (r *rateSession) Body() io.Reader { return r }

// Early passes on whether the request came in early data.
func (r *rateSession) Early() bool {
	e, ok := r.Session.(proxy.Early)
	return ok && e.Early()
}

// JA4 passes on the stream's fingerprint.
func (r *rateSession) JA4() string {
	if f, ok := r.Session.(proxy.Fingerprinted); ok {
		return f.JA4()
	}
	return ""
}

// WriteInterim passes on to the stream (proxy.InterimWriter): 103 Early
// Hints reach HTTP/2 and HTTP/3 requests that have a body too.
func (r *rateSession) WriteInterim(resp *httphead.Response) error {
	if w, ok := r.Session.(proxy.InterimWriter); ok {
		return w.WriteInterim(resp)
	}
	return nil
}

// FlushHead passes on to the stream (proxy.HeadFlusher).
func (r *rateSession) FlushHead() error {
	if f, ok := r.Session.(proxy.HeadFlusher); ok {
		return f.FlushHead()
	}
	return nil
}

func (r *rateSession) Read(p []byte) (int, error) { return r.rate.read(r.srv, r.d, r.body, p) }

// Trailers passes on the body's trailer section (proxy.Trailered).
func (r *rateSession) Trailers() *httphead.Header {
	if t, ok := r.body.(proxy.Trailered); ok {
		return t.Trailers()
	}
	return nil
}
