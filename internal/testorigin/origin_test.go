package testorigin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// get fetches url with a fresh HTTP/1.1 connection and a bounded wait,
// returning the response with its body read (or the error from reading it).
func get(t *testing.T, url string, header http.Header, wait time.Duration) (*http.Response, []byte, error) {
	t.Helper()
	return fetch(t, &http.Transport{DisableKeepAlives: true}, url, header, wait)
}

func fetch(t *testing.T, rt http.RoundTripper, url string, header http.Header, wait time.Duration) (*http.Response, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if header != nil {
		req.Header = header
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestRespondServesTheResponseAndCountsHits(t *testing.T) {
	o := New(t)
	o.Respond("/a", http.StatusTeapot, http.Header{"Cache-Control": {"max-age=60"}}, "hello")
	for range 3 {
		resp, body, err := get(t, o.URL("/a?x=1"), http.Header{"X-Test": {"yes"}}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusTeapot || string(body) != "hello" || resp.Header.Get("Cache-Control") != "max-age=60" {
			t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
	if n := o.Hits("/a"); n != 3 {
		t.Errorf("Hits = %d, want 3", n)
	}
	if r := o.LastRequest("/a"); r == nil || r.Header.Get("X-Test") != "yes" || r.URL.RawQuery != "x=1" {
		t.Errorf("LastRequest = %+v", r)
	}
}

func TestUnknownPathIs404AndCounted(t *testing.T) {
	o := New(t)
	resp, _, err := get(t, o.URL("/nothing"), nil, 5*time.Second)
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("got %v, %v", resp, err)
	}
	if o.Hits("/nothing") != 1 {
		t.Errorf("Hits = %d", o.Hits("/nothing"))
	}
}

func TestSlowFirstByteAndHangHoldTheClient(t *testing.T) {
	o := New(t)
	o.SlowFirstByte("/slow", time.Hour, http.StatusOK, nil, "late")
	o.SlowFirstByte("/quick", time.Millisecond, http.StatusOK, nil, "soon")
	o.Hang("/hang")
	for _, path := range []string{"/slow", "/hang"} {
		if _, _, err := get(t, o.URL(path), nil, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: err = %v, want the client to give up", path, err)
		}
		if o.Hits(path) != 1 {
			t.Errorf("%s: Hits = %d", path, o.Hits(path))
		}
	}
	if _, body, err := get(t, o.URL("/quick"), nil, 5*time.Second); err != nil || string(body) != "soon" {
		t.Errorf("/quick: %q, %v", body, err)
	}
}

func TestBreakMidBodyEndsTheResponseEarly(t *testing.T) {
	o := New(t)
	o.BreakMidBody("/close", 1000, 300, Close)
	o.BreakMidBody("/reset", 1<<20, 300, Reset)
	o.BreakMidBody("/stall", 1000, 300, Stall)
	tests := []struct {
		path    string
		wantErr error
	}{
		{"/close", io.ErrUnexpectedEOF},
		{"/reset", nil}, // reset or EOF, depending on timing
		{"/stall", context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body, err := get(t, o.URL(tt.path), nil, 200*time.Millisecond)
			if resp == nil {
				t.Fatalf("no response head: %v", err)
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("body err = %v, want %v", err, tt.wantErr)
			}
			if len(body) > 300 || CheckPattern(bytes.NewReader(body), 0, int64(len(body))) != nil {
				t.Errorf("got %d bytes not from the pattern", len(body))
			}
		})
	}
}

func TestGarbageIsNotHTTP(t *testing.T) {
	o := New(t)
	o.Garbage("/g", "SSH-2.0-OpenSSH\r\n\x00\x01\x02")
	if _, _, err := get(t, o.URL("/g"), nil, 5*time.Second); err == nil || !strings.Contains(err.Error(), "malformed HTTP") {
		t.Errorf("err = %v, want a malformed response", err)
	}
}

func TestWrongLength(t *testing.T) {
	o := New(t)
	o.WrongLength("/short", 3, "abcdef")
	o.WrongLength("/long", 10, "abc")
	if _, body, err := get(t, o.URL("/short"), nil, 5*time.Second); err != nil || string(body) != "abc" {
		t.Errorf("/short: %q, %v; want the declared 3 bytes", body, err)
	}
	if _, _, err := get(t, o.URL("/long"), nil, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("/long: err = %v, want the client to wait in vain", err)
	}
}

func TestChunkedSendsChunksAndTrailers(t *testing.T) {
	o := New(t)
	o.Chunked("/c", http.Header{"Content-Type": {"text/plain"}}, []string{"one ", "two ", "three"}, http.Header{"X-Checksum": {"abc"}})
	resp, body, err := get(t, o.URL("/c"), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "one two three" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("body %q, transfer encoding %v", body, resp.TransferEncoding)
	}
	if resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("trailer = %v", resp.Trailer)
	}
}

func TestStreamServesThePatternWithRanges(t *testing.T) {
	o := New(t)
	const size = 5<<20 + 123
	o.Stream("/big", size, http.Header{"Etag": {`"big"`}})
	resp, body, err := get(t, o.URL("/big"), nil, 10*time.Second)
	if err != nil || resp.ContentLength != size {
		t.Fatalf("got length %d, %v", resp.ContentLength, err)
	}
	if err := CheckPattern(bytes.NewReader(body), 0, size); err != nil {
		t.Error(err)
	}
	resp, body, err = get(t, o.URL("/big"), http.Header{"Range": {"bytes=100000-199999"}}, 5*time.Second)
	if err != nil || resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("range: %v, %v", resp, err)
	}
	if err := CheckPattern(bytes.NewReader(body), 100000, 100000); err != nil {
		t.Error(err)
	}
	resp, _, _ = get(t, o.URL("/big"), http.Header{"If-None-Match": {`"big"`}}, 5*time.Second)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional: status %d", resp.StatusCode)
	}
}

func TestKillAndRestartOnTheSamePort(t *testing.T) {
	o := New(t)
	o.Respond("/", http.StatusOK, nil, "up")
	o.Hang("/hang")
	hung := make(chan error, 1)
	go func() {
		_, _, err := get(t, o.URL("/hang"), nil, 10*time.Second)
		hung <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for o.Hits("/hang") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	o.Kill()
	if err := <-hung; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request in flight during Kill: err = %v, want the connection dropped", err)
	}
	if _, err := net.Dial("tcp", o.Addr()); err == nil {
		t.Error("dial after Kill succeeded")
	}

	o.Restart()
	if _, body, err := get(t, o.URL("/"), nil, 5*time.Second); err != nil || string(body) != "up" {
		t.Errorf("after Restart: %q, %v", body, err)
	}
}

func TestFillPatternIsTheSameHoweverItIsSplit(t *testing.T) {
	const size = 3*blockSize + 777
	whole := make([]byte, size)
	FillPattern(whole, 0)
	pieces := make([]byte, size)
	for off, step := 0, 1; off < size; off, step = off+step, step*3+1 {
		end := min(off+step, size)
		FillPattern(pieces[off:end], int64(off))
	}
	if !bytes.Equal(whole, pieces) {
		t.Fatal("pattern depends on how it is split")
	}
	if bytes.Equal(whole[:blockSize], whole[blockSize:2*blockSize]) {
		t.Fatal("successive blocks repeat; misplaced data would go unnoticed")
	}
	if err := CheckPattern(bytes.NewReader(whole[10:]), 10, size-10); err != nil {
		t.Error(err)
	}
	whole[5000] ^= 1
	if err := CheckPattern(bytes.NewReader(whole), 0, size); err == nil || !strings.Contains(err.Error(), "byte 5000") {
		t.Errorf("CheckPattern on damaged data = %v", err)
	}
}

// protocolTests are the ways a client can talk to an origin.
var protocolTests = []struct {
	name      string
	start     func(testing.TB) *Origin
	transport func(*Origin) *http.Transport
	major     int
}{
	{"HTTP/1.1", New, func(*Origin) *http.Transport { return &http.Transport{} }, 1},
	{"HTTP/1.1 over TLS", NewTLS, func(o *Origin) *http.Transport {
		return &http.Transport{TLSClientConfig: o.ClientTLS(), Protocols: protocols(true, false, false)}
	}, 1},
	{"HTTP/2 over TLS", NewTLS, func(o *Origin) *http.Transport {
		return &http.Transport{TLSClientConfig: o.ClientTLS(), Protocols: protocols(false, true, false)}
	}, 2},
	{"cleartext HTTP/2", NewH2C, func(*Origin) *http.Transport {
		return &http.Transport{Protocols: protocols(false, false, true)}
	}, 2},
}

func protocols(h1, h2, h2c bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(h1)
	p.SetHTTP2(h2)
	p.SetUnencryptedHTTP2(h2c)
	return p
}

func TestEveryProtocolServesAndMisbehaves(t *testing.T) {
	for _, pt := range protocolTests {
		t.Run(pt.name, func(t *testing.T) {
			o := pt.start(t)
			rt := pt.transport(o)
			t.Cleanup(rt.CloseIdleConnections)
			o.Respond("/ok", 200, nil, "fine")
			o.BreakMidBody("/reset", 1000, 300, Reset)
			o.Garbage("/garbage", "\x00\x01 not http")
			o.Trickle("/trickle", 1000, 300, time.Millisecond)
			for range 3 {
				resp, body, err := fetch(t, rt, o.URL("/ok"), nil, 5*time.Second)
				if err != nil || string(body) != "fine" || resp.ProtoMajor != pt.major {
					t.Fatalf("/ok: %v %q, %v", resp, body, err)
				}
			}
			if o.Conns() != 1 {
				t.Errorf("3 requests on a keep-alive client opened %d connections, want 1", o.Conns())
			}
			if _, body, err := fetch(t, rt, o.URL("/reset"), nil, 5*time.Second); err == nil || len(body) > 300 {
				t.Errorf("/reset: %d bytes, err %v; want at most 300 and an error", len(body), err)
			}
			if _, _, err := fetch(t, rt, o.URL("/garbage"), nil, 5*time.Second); err == nil {
				t.Error("/garbage: no error")
			}
			if _, body, err := fetch(t, rt, o.URL("/trickle"), nil, 5*time.Second); err != nil || CheckPattern(bytes.NewReader(body), 0, 1000) != nil {
				t.Errorf("/trickle: %d bytes, %v", len(body), err)
			}
			o.Kill()
			rt.CloseIdleConnections()
			o.Restart()
			if _, body, err := fetch(t, rt, o.URL("/ok"), nil, 5*time.Second); err != nil || string(body) != "fine" {
				t.Errorf("/ok after Restart: %q, %v", body, err)
			}
		})
	}
}

func TestCertFileTrustsTheTLSOrigin(t *testing.T) {
	o := NewTLS(t)
	pem, err := os.ReadFile(o.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CertFile holds no certificate")
	}
	o.Respond("/", 200, nil, "secure")
	rt := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	if _, body, err := fetch(t, rt, o.URL("/"), nil, 5*time.Second); err != nil || string(body) != "secure" {
		t.Errorf("got %q, %v", body, err)
	}
	if New(t).CertFile() != "" {
		t.Error("plain origin has a CertFile")
	}
}

func TestEchoStreamsTheRequestBodyBack(t *testing.T) {
	o := New(t)
	o.Echo("/echo")
	const size = 3<<20 + 5
	req, _ := http.NewRequestWithContext(t.Context(), "POST", o.URL("/echo"), NewPattern(size))
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/x-test")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-test" || resp.ContentLength != size {
		t.Errorf("head: %v, length %d", resp.Header, resp.ContentLength)
	}
	if err := CheckPattern(resp.Body, 0, size); err != nil {
		t.Error(err)
	}
}
