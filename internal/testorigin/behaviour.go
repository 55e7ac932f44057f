package testorigin

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Respond serves a fixed response on path. header may be nil; a
// Content-Length is added for body.
func (o *Origin) Respond(path string, status int, header http.Header, body string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond(w, status, header, body)
	}))
}

func respond(w http.ResponseWriter, status int, header http.Header, body string) {
	maps.Copy(w.Header(), header)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// SlowFirstByte serves a fixed response on path after waiting delay (the
// wait ends early if the client goes away or the origin is killed).
func (o *Origin) SlowFirstByte(path string, delay time.Duration, status int, header http.Header, body string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.wait(r.Context(), delay) {
			respond(w, status, header, body)
		}
	}))
}

// Hang accepts requests on path and never answers, until the client goes
// away, the origin is killed or the test ends.
func (o *Origin) Hang(path string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.wait(r.Context(), -1)
	}))
}

// wait blocks for d (forever if d < 0) and reports whether it ran its course
// rather than being cut short by ctx or the end of the test.
func (o *Origin) wait(ctx context.Context, d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-ctx.Done():
	case <-o.stop:
	}
	return false
}

// Ending is how BreakMidBody ends a response it left unfinished.
type Ending int

const (
	// Close closes the connection normally (FIN).
	Close Ending = iota
	// Reset aborts the connection with an RST (SO_LINGER 0).
	Reset
	// Stall keeps the connection open and silent until the client closes
	// it, the origin is killed or the test ends.
	Stall
)

// BreakMidBody answers 200 with Content-Length declared, sends the first sent
// bytes of the pattern (see FillPattern), then ends as how says. On HTTP/2,
// Close and Reset both reset the stream.
func (o *Origin) BreakMidBody(path string, declared, sent int64, how Ending) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			w.Header().Set("Content-Length", strconv.FormatInt(declared, 10))
			w.Header().Set("Content-Type", "application/octet-stream")
			io.Copy(w, NewPattern(sent))
			http.NewResponseController(w).Flush()
			o.endStream(r, how == Stall)
			return
		}
		c, ok := o.hijack(w)
		if !ok {
			return
		}
		c.Write(okHead(http.Header{"Content-Type": {"application/octet-stream"}}, declared))
		io.Copy(c, NewPattern(sent))
		if how == Stall {
			o.drain(c)
		}
		o.release(c, how == Reset)
	}))
}

// endStream ends an HTTP/2 response early: with RST_STREAM, or after a stall
// when stall is set (until the client cancels or the test ends).
func (o *Origin) endStream(r *http.Request, stall bool) {
	if stall {
		o.wait(r.Context(), -1)
		return
	}
	panic(http.ErrAbortHandler) // net/http resets the stream and logs nothing
}

// Garbage answers requests on path with data instead of an HTTP response,
// then closes the connection. On HTTP/2, where framing cannot be broken from
// a handler, it resets the stream instead.
func (o *Origin) Garbage(path, data string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			o.endStream(r, false)
		}
		c, ok := o.hijack(w)
		if !ok {
			return
		}
		io.WriteString(c, data)
		o.release(c, false)
	}))
}

// WrongLength answers 200 with a Content-Length of declared but sends body,
// then keeps the connection open and silent (until the client closes it, the
// origin is killed or the test ends). With declared > len(body) the client
// waits for bytes that never come; with declared < len(body) the surplus
// sits on the connection where the next response should start. On HTTP/2
// the surplus cannot be sent: the body is cut to declared, then the stream
// stalls.
func (o *Origin) WrongLength(path string, declared int64, body string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			w.Header().Set("Content-Length", strconv.FormatInt(declared, 10))
			io.WriteString(w, body[:min(declared, int64(len(body)))])
			http.NewResponseController(w).Flush()
			o.endStream(r, true)
			return
		}
		c, ok := o.hijack(w)
		if !ok {
			return
		}
		c.Write(append(okHead(nil, declared), body...))
		o.drain(c)
		o.release(c, false)
	}))
}

// drain reads from c until the peer closes it or the test ends.
func (o *Origin) drain(c net.Conn) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-o.stop:
			c.Close()
		case <-done:
		}
	}()
	io.Copy(io.Discard, c)
}

// Trickle answers 200 with Content-Length size and sends the pattern in
// pieces of chunk bytes, one every interval: a slow but live origin.
func (o *Origin) Trickle(path string, size int64, chunk int, interval time.Duration) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		rc := http.NewResponseController(w)
		chunk := max(chunk, 1)
		buf := make([]byte, chunk)
		for off := int64(0); off < size; off += int64(chunk) {
			if off > 0 && !o.wait(r.Context(), interval) {
				return
			}
			p := buf[:min(int64(chunk), size-off)]
			FillPattern(p, off)
			w.Write(p)
			rc.Flush()
		}
	}))
}

// Echo answers 200 with the request body streamed back as it arrives (so a
// large upload is never held in memory) and the request's Content-Type.
func (o *Origin) Echo(path string) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		if r.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		}
		// Answer while the body still arrives, as a streaming proxy must cope with.
		http.NewResponseController(w).EnableFullDuplex()
		io.Copy(w, r.Body)
	}))
}

// Chunked answers 200 with a chunked body, flushing after each chunk so each
// goes out as its own chunk, then sends trailer (which may be nil).
func (o *Origin) Chunked(path string, header http.Header, chunks []string, trailer http.Header) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		maps.Copy(w.Header(), header)
		for name := range trailer {
			w.Header().Add("Trailer", name)
		}
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		for _, c := range chunks {
			io.WriteString(w, c)
			rc.Flush()
		}
		maps.Copy(w.Header(), trailer)
	}))
}

// Stream serves size bytes of the pattern on path, generated as they are
// sent, with Range and conditional request support from http.ServeContent.
// header is added to the response (may be nil).
func (o *Origin) Stream(path string, size int64, header http.Header) {
	o.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		maps.Copy(w.Header(), header)
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		http.ServeContent(w, r, "", time.Time{}, NewPattern(size))
	}))
}
