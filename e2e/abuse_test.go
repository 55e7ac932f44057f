package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// abuseConfig is a node with short client timeouts in front of origin, with
// cleartext HTTP/2 on; extra is appended (limits, other timeouts).
const abuseConfig = `
listeners:
  - addr: 127.0.0.1:0
    h2c: true
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
    connect_timeout: 1s
routes:
  - name: all
    upstream: origin
`

// abuseOrigin answers /big with size bytes of zeros, reads any request body
// whole, and answers everything else with "ok".
func abuseOrigin(t *testing.T, size int) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/big" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
				return
			}
		}
	}))
}

// abuseServing runs a well-behaved client against url until the returned
// stop is called; stop reports how many requests it made and fails the test
// on any failed one.
func abuseServing(t *testing.T, c *http.Client, url string) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10000; i++ {
			select {
			case <-done:
				return
			default:
			}
			resp, err := c.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "ok" {
					err = fmt.Errorf("status %d body %q", resp.StatusCode, b)
				}
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			n.Add(1)
		}
	}()
	return func() int {
		t.Helper()
		close(done)
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			t.Errorf("a normal client failed during the attack: %v", err)
		}
		if n.Load() == 0 {
			t.Error("the normal client was not served during the attack")
		}
		return int(n.Load())
	}
}

var abuseH1Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// abuseTrickle sends raw one byte at a time, a byte per interval, and
// stops as soon as the server answers or closes. It returns how many bytes
// went out and what the server sent back.
func abuseTrickle(t *testing.T, addr, raw string, step int, interval time.Duration) (sent int, answer string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	for sent < len(raw) {
		k := min(step, len(raw)-sent)
		if _, err := io.WriteString(conn, raw[sent:sent+k]); err != nil {
			break
		}
		sent += k
		// The read is the pacing: it waits interval for an answer.
		conn.SetReadDeadline(time.Now().Add(interval))
		n, err := conn.Read(buf)
		if n > 0 || err != nil && !isTimeout(err) {
			answer = string(buf[:n])
			break
		}
	}
	return sent, answer
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSlowlorisHeadIsCutAtHeaderTimeoutInTotal(t *testing.T) {
	t.Parallel()
	e := startEdge(t, abuseConfig+"timeouts: {header: 1s}\n", "{{ORIGIN}}", abuseOrigin(t, 0))
	host := strings.TrimPrefix(e.URL, "http://")
	stop := abuseServing(t, abuseH1Client, e.URL+"/")

	// 60 bytes at 5 a second would take 12s; each byte arriving well within
	// the timeout must not extend it.
	head := "GET / HTTP/1.1\r\nHost: " + host + "\r\nX-Pad: " + strings.Repeat("a", 10) + "\r\n\r\n"
	sent, answer := abuseTrickle(t, host, head, 1, 200*time.Millisecond)
	if sent == len(head) {
		t.Fatalf("the whole trickled head was read (%d bytes); answer %q", sent, answer)
	}
	if answer != "" && !strings.HasPrefix(answer, "HTTP/1.1 408 ") {
		t.Errorf("answer to a trickled head: %q, want 408 or a close", answer)
	}

	// A connection that never sends a byte is closed at the header
	// timeout, not held for the keep-alive time.
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("silent connection: read %v, want EOF from the server", err)
	}
	t.Logf("head cut after %d of %d bytes; normal client served %d requests meanwhile", sent, len(head), stop())
}

func TestSlowPostBelowMinimumRateGets408(t *testing.T) {
	t.Parallel()
	// body_read 1s is never hit: a chunk arrives every 200ms. The rate
	// (500 B/s, under the 1 KiB/s minimum) is enforced after the 10s grace.
	e := startEdge(t, abuseConfig+"timeouts: {body_read: 1s}\n", "{{ORIGIN}}", abuseOrigin(t, 0))
	host := strings.TrimPrefix(e.URL, "http://")
	stop := abuseServing(t, abuseH1Client, e.URL+"/")
	body := strings.Repeat("b", 100<<10)
	raw := "POST /up HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	head := len(raw) - len(body)
	start := time.Now()
	sent, answer := abuseTrickle(t, host, raw, 100, 200*time.Millisecond)
	if !strings.HasPrefix(answer, "HTTP/1.1 408 ") {
		t.Fatalf("slow POST: answer %q after %d body bytes, want 408", answer, sent-head)
	}
	t.Logf("slow POST cut with 408 after %d body bytes in %v; normal client served %d requests meanwhile",
		sent-head, time.Since(start).Round(100*time.Millisecond), stop())
}

func TestSlowReaderIsCutAtWriteTimeout(t *testing.T) {
	t.Parallel()
	const size = 256 << 20
	e := startEdge(t, abuseConfig+"timeouts: {write: 1s}\n", "{{ORIGIN}}", abuseOrigin(t, size))
	host := strings.TrimPrefix(e.URL, "http://")
	// The normal client keeps one connection, so the node holds exactly
	// two while the slow reader is there.
	normal := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	stop := abuseServing(t, normal, e.URL+"/")
	abuseWait(t, "the normal client's connection", func() bool { return e.Stats().Connections == 1 })
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /big HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	start := time.Now()
	abuseWait(t, "the slow reader's connection", func() bool { return e.Stats().Connections == 2 })
	// Read nothing until the server has given up on this connection.
	abuseWait(t, "the slow reader to be cut", func() bool { return e.Stats().Connections == 1 })
	took := time.Since(start)
	served := stop()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.Copy(io.Discard, conn)
	if got >= size {
		t.Fatalf("the slow reader got the whole %d bytes", got)
	}
	t.Logf("slow reader cut after %v, having taken %d of %d bytes; normal client served %d requests meanwhile",
		took.Round(10*time.Millisecond), got, size, served)
}

func TestConnectionsOverPerClientLimitAreClosedAtOnce(t *testing.T) {
	t.Parallel()
	e := startEdge(t, abuseConfig+"timeouts: {header: 30s}\nlimits: {max_conns_per_ip: 2}\n", "{{ORIGIN}}", abuseOrigin(t, 0))
	host := strings.TrimPrefix(e.URL, "http://")
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	abuseWait(t, "two held connections", func() bool { return e.Stats().Connections == 2 })
	over, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	fmt.Fprintf(over, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := over.Read(make([]byte, 64)); n > 0 || err == nil || isTimeout(err) {
		t.Fatalf("third connection from one client: read %d bytes, %v; want it closed", n, err)
	}
	if n := e.Stats().Connections; n != 2 {
		t.Errorf("%d connections open, want the 2 held", n)
	}
	held[0].Close()
	abuseWait(t, "a slot to free", func() bool { return e.Stats().Connections == 1 })
	if resp, body := get(t, e.URL+"/"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after a slot freed: %d %q", resp.StatusCode, body)
	}
}

// abuseWait polls cond for up to 10s; state, if given, describes what
// was seen when it gives up.
func abuseWait(t *testing.T, what string, cond func() bool, state ...func() string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			for _, s := range state {
				what += " (" + s() + ")"
			}
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// abuseHealth samples the process while an attack runs: goroutines and
// heap in use, against a baseline taken before.
type abuseHealth struct {
	baseG, maxG       int
	baseHeap, maxHeap uint64
	stop, done        chan struct{}
}

func abuseWatchHealth() *abuseHealth {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &abuseHealth{baseG: runtime.NumGoroutine(), baseHeap: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	h.maxG, h.maxHeap = h.baseG, h.baseHeap
	go func() {
		defer close(h.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			h.maxG = max(h.maxG, runtime.NumGoroutine())
			h.maxHeap = max(h.maxHeap, ms.HeapInuse)
		}
	}()
	return h
}

// end stops sampling and fails t when the attack grew goroutines by more
// than maxG or the heap by more than maxHeapMiB.
func (h *abuseHealth) end(t *testing.T, maxG int, maxHeapMiB float64) string {
	t.Helper()
	close(h.stop)
	<-h.done
	dHeap := (float64(h.maxHeap) - float64(h.baseHeap)) / (1 << 20)
	if h.maxG-h.baseG > maxG {
		t.Errorf("goroutines grew from %d to %d during the attack", h.baseG, h.maxG)
	}
	if dHeap > maxHeapMiB {
		t.Errorf("heap in use grew by %.1f MiB during the attack", dHeap)
	}
	return fmt.Sprintf("goroutines %d -> max %d, heap in use %.1f -> max %.1f MiB",
		h.baseG, h.maxG, float64(h.baseHeap)/(1<<20), float64(h.maxHeap)/(1<<20))
}

func abuseH2CClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// abuseAttacker is a raw HTTP/2 client built on x/net/http2's Framer.
type abuseAttacker struct {
	conn   net.Conn
	bw     *bufio.Writer
	fr     *http2.Framer
	enc    *hpack.Encoder
	block  bytes.Buffer
	host   string
	closed chan struct{} // closed when the server ends the connection
	goaway atomic.Int64  // GOAWAY error code + 1; 0: none received
	resets atomic.Int64  // RST_STREAM frames received
	status [600]atomic.Int64
}

func abuseDial(t *testing.T, addr string) *abuseAttacker {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a := &abuseAttacker{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), host: addr, closed: make(chan struct{})}
	a.fr = http2.NewFramer(a.bw, nil)
	a.enc = hpack.NewEncoder(&a.block)
	io.WriteString(a.bw, http2.ClientPreface)
	a.fr.WriteSettings()
	a.bw.Flush()
	go a.read()
	return a
}

// read consumes what the server sends, noting GOAWAY, RST_STREAM and
// response statuses, until the connection ends.
func (a *abuseAttacker) read() {
	defer close(a.closed)
	fr := http2.NewFramer(nil, a.conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			a.goaway.Store(int64(f.ErrCode) + 1)
		case *http2.RSTStreamFrame:
			a.resets.Add(1)
		case *http2.MetaHeadersFrame:
			var s int
			fmt.Sscan(f.PseudoValue("status"), &s)
			if s > 0 && s < len(a.status) {
				a.status[s].Add(1)
			}
		}
	}
}

// headers encodes a request head; extra are name, value pairs.
func (a *abuseAttacker) headers(method, path string, extra ...string) []byte {
	a.block.Reset()
	for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", a.host}, {":path", path}} {
		a.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		a.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return a.block.Bytes()
}

// flood calls step up to count times or for budget, whichever ends first,
// and stops early when the server ends the connection. It returns how many
// steps were written.
func (a *abuseAttacker) flood(count int, budget time.Duration, step func(i int) error) int {
	a.conn.SetWriteDeadline(time.Now().Add(budget))
	deadline := time.Now().Add(budget)
	for i := 0; i < count; i++ {
		select {
		case <-a.closed:
			return i
		default:
		}
		if time.Now().After(deadline) || step(i) != nil {
			return i
		}
		if i%64 == 63 && a.bw.Flush() != nil {
			return i
		}
	}
	a.bw.Flush()
	return count
}

// ended waits up to 10s for the server to end the connection.
func (a *abuseAttacker) ended() bool {
	select {
	case <-a.closed:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

func (a *abuseAttacker) goawayCode() string {
	if c := a.goaway.Load(); c > 0 {
		return http2.ErrCode(c - 1).String()
	}
	return "none"
}

func TestHTTP2AbuseIsContainedWhileNormalClientsAreServed(t *testing.T) {
	var attackHits atomic.Int64
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/attack" {
			attackHits.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	e := startEdge(t, abuseConfig, "{{ORIGIN}}", origin)
	addr := strings.TrimPrefix(e.URL, "http://")
	normal := abuseH2CClient()
	if resp, err := normal.Get(e.URL + "/"); err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("h2c warm-up: %v", err)
	} else {
		resp.Body.Close()
	}

	cases := []struct {
		name       string
		attack     func(a *abuseAttacker) int
		wantClosed bool
		wantGoaway string
		check      func(t *testing.T, a *abuseAttacker, sent int)
	}{
		{
			name: "rapid reset: HEADERS then RST_STREAM, over and over",
			attack: func(a *abuseAttacker) int {
				return a.flood(100000, 5*time.Second, func(i int) error {
					id := uint32(2*i + 1)
					a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.headers("GET", "/attack"), EndStream: true, EndHeaders: true})
					return a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
				})
			},
			wantClosed: true,
			wantGoaway: "ENHANCE_YOUR_CALM",
		},
		{
			name: "CONTINUATION flood: a header block that never ends",
			attack: func(a *abuseAttacker) int {
				return a.flood(1000000, 5*time.Second, func(i int) error {
					if i == 0 {
						return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headers("GET", "/attack"), EndStream: true})
					}
					return a.fr.WriteContinuation(1, false, nil)
				})
			},
			wantClosed: true,
			wantGoaway: "ENHANCE_YOUR_CALM",
		},
		{
			name: "SETTINGS flood",
			attack: func(a *abuseAttacker) int {
				return a.flood(1000000, 5*time.Second, func(int) error {
					return a.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
				})
			},
			wantClosed: true,
			wantGoaway: "ENHANCE_YOUR_CALM",
		},
		{
			name: "PING flood",
			attack: func(a *abuseAttacker) int {
				return a.flood(1000000, 5*time.Second, func(i int) error {
					return a.fr.WritePing(false, [8]byte{byte(i)})
				})
			},
			wantClosed: true,
			wantGoaway: "ENHANCE_YOUR_CALM",
		},
		{
			name: "too many concurrent streams: uploads that never send their body",
			attack: func(a *abuseAttacker) int {
				return a.flood(1000, 5*time.Second, func(i int) error {
					return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: a.headers("POST", "/attack"), EndHeaders: true})
				})
			},
			check: func(t *testing.T, a *abuseAttacker, sent int) {
				// 100 streams may open; the server refuses the rest.
				abuseWait(t, "the streams over the limit to be refused", func() bool {
					return a.resets.Load() >= int64(sent-100) || isClosed(a.closed)
				})
			},
		},
		{
			name: "HPACK: dynamic table larger than the server allows",
			attack: func(a *abuseAttacker) int {
				a.enc.SetMaxDynamicTableSizeLimit(1 << 24)
				a.enc.SetMaxDynamicTableSize(1 << 24)
				return a.flood(1, 5*time.Second, func(int) error {
					return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headers("GET", "/attack"), EndStream: true, EndHeaders: true})
				})
			},
			wantClosed: true,
			wantGoaway: "COMPRESSION_ERROR",
		},
		{
			name: "HPACK bomb: one 4000-byte entry referenced 2000 times a request",
			attack: func(a *abuseAttacker) int {
				bomb := make([]string, 0, 4000)
				for range 2000 {
					bomb = append(bomb, "x-bomb", strings.Repeat("b", 4000))
				}
				return a.flood(300, 5*time.Second, func(i int) error {
					return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: a.headers("GET", "/attack", bomb...), EndStream: true, EndHeaders: true})
				})
			},
			check: func(t *testing.T, a *abuseAttacker, sent int) {
				abuseWait(t, "every bomb to be refused", func() bool {
					return a.status[431].Load()+a.resets.Load() >= int64(sent) || isClosed(a.closed)
				}, func() string {
					return fmt.Sprintf("%d sent, %d 431s, %d resets, GOAWAY %s", sent, a.status[431].Load(), a.resets.Load(), a.goawayCode())
				})
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := attackHits.Load()
			health := abuseWatchHealth()
			stop := abuseServing(t, normal, e.URL+"/")
			a := abuseDial(t, addr)
			start := time.Now()
			sent := tc.attack(a)
			if tc.wantClosed && !a.ended() {
				t.Errorf("the attacker's connection is still open after %d frames", sent)
			}
			if tc.wantGoaway != "" && a.goawayCode() != tc.wantGoaway {
				t.Errorf("GOAWAY %s, want %s", a.goawayCode(), tc.wantGoaway)
			}
			took := time.Since(start)
			if tc.check != nil {
				tc.check(t, a, sent)
			}
			closed := isClosed(a.closed)
			a.conn.Close()
			served := stop()
			measured := health.end(t, 2000, 64)
			t.Logf("%d steps sent; closed=%v after %v, GOAWAY %s, %d RST_STREAM, %d 431s; origin saw %d attack requests; normal client served %d; %s",
				sent, closed, took.Round(time.Millisecond), a.goawayCode(), a.resets.Load(), a.status[431].Load(),
				attackHits.Load()-before, served, measured)
		})
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
