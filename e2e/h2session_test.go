package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const h2cRoute = "listeners:\n  - addr: 127.0.0.1:0\n    h2c: true\n" + oneRoute

// h2Origin serves /slow when release closes (uncacheable), /big as 1 MiB
// and anything else as a small cacheable object.
func h2Origin(t *testing.T, slowSeen chan<- struct{}, release <-chan struct{}) string {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			w.Header().Set("Cache-Control", "no-store")
			slowSeen <- struct{}{}
			<-release
			io.WriteString(w, "slow")
		case "/big":
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Write(big)
		default:
			w.Header().Set("Cache-Control", "max-age=3600")
			io.WriteString(w, "hit me")
		}
	}))
}

func h2Get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("GET %s: proto %d, %v", url, resp.ProtoMajor, err)
	}
	return string(b)
}

// A cache hit runs inline on the connection's loop; a request waiting on
// its origin must not hold up the hits behind it on the same connection.
func TestH2SlowMissDoesNotHoldUpHitsOnTheSameConnection(t *testing.T) {
	seen, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	e := startEdge(t, h2cRoute, "{{ORIGIN}}", h2Origin(t, seen, release))
	c := abuseH2CClient() // one connection, all streams on it
	h2Get(t, c, e.URL+"/obj")
	slow := make(chan string, 1)
	go func() {
		resp, err := c.Get(e.URL + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-seen
	start := time.Now()
	for range 20 {
		if got := h2Get(t, c, e.URL+"/obj"); got != "hit me" {
			t.Fatalf("hit: %q", got)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20 hits took %v behind a stalled miss", d)
	}
	release <- struct{}{}
	if got := <-slow; got != "slow" {
		t.Fatalf("slow request: %q", got)
	}
}

// RFC 9113 section 6.9: a 1 MiB cache hit to a client with 16 KiB stream
// windows and the default 64 KiB connection window arrives whole, and no
// DATA ever goes past the credit the client gave.
func TestRFC9113Section6_9LargeHitStaysWithinTheClientsWindows(t *testing.T) {
	e := startEdge(t, h2cRoute, "{{ORIGIN}}", h2Origin(t, nil, nil))
	h2Get(t, abuseH2CClient(), e.URL+"/big") // fill the cache
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	const win = 16384
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: win})
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/big"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	streamCredit, connCredit, got := int64(win), int64(65535), 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("after %d bytes: %v", got, f)
		case *http2.DataFrame:
			n := int64(f.Length)
			streamCredit -= n
			connCredit -= n
			if streamCredit < 0 || connCredit < 0 {
				t.Fatalf("DATA past the window: stream %d, connection %d", streamCredit, connCredit)
			}
			got += len(f.Data())
			if f.StreamEnded() {
				if got != 1<<20 {
					t.Fatalf("body of %d bytes", got)
				}
				return
			}
			// Credit back what arrived, a frame at a time.
			if n > 0 {
				fr.WriteWindowUpdate(1, uint32(n))
				fr.WriteWindowUpdate(0, uint32(n))
				streamCredit += n
				connCredit += n
			}
		}
	}
}

// On shutdown an HTTP/2 connection gets GOAWAY, and the stream it has open
// still completes.
func TestH2ShutdownSendsGoawayAndFinishesOpenStreams(t *testing.T) {
	seen, release := make(chan struct{}, 1), make(chan struct{})
	e := startEdge(t, h2cRoute, "{{ORIGIN}}", h2Origin(t, seen, release))
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/slow"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	<-seen
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	}()
	goaway, body := false, ""
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break // the connection closed
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			if !goaway {
				goaway = true
				close(release) // the open stream may now complete
			}
		case *http2.DataFrame:
			body += string(f.Data())
		}
	}
	if !goaway || body != "slow" {
		t.Fatalf("GOAWAY %v, body %q; want GOAWAY, then the open stream's body", goaway, body)
	}
}

// RFC 9110 section 10.1.1: a client that sends "Expect: 100-continue"
// over HTTP/2 gets 100 (Continue) before it sends the body, and then the
// response.
func TestRFC9110Section10_1_1ContinueOverHTTP2(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(b))
	}))
	e := startEdge(t, h2cRoute, "{{ORIGIN}}", origin)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/up"}, {"expect", "100-continue"}, {"content-length", "5"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true})
	var statuses []string
	body := ""
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("statuses %v, body %q: %v", statuses, body, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			statuses = append(statuses, f.PseudoValue("status"))
			if f.PseudoValue("status") == "100" {
				fr.WriteData(1, true, []byte("hello"))
			}
		case *http2.DataFrame:
			body += string(f.Data())
			if f.StreamEnded() {
				if strings.Join(statuses, ",") != "100,200" || body != "got hello" {
					t.Fatalf("statuses %v, body %q; want 100 then 200 with the body", statuses, body)
				}
				return
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("%v", f)
		}
	}
}
