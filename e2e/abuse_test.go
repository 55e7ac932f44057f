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

	"github.com/outpost-edge/outpost/internal/malformed"
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

func TestConnectionsOverTheLimitAreClosedAtOnce(t *testing.T) {
	t.Parallel()
	for _, limit := range []string{"max_conns_per_ip", "max_conns"} {
		t.Run(limit, func(t *testing.T) {
			e := startEdge(t, abuseConfig+"timeouts: {header: 30s}\nlimits: {"+limit+": 2}\n", "{{ORIGIN}}", abuseOrigin(t, 0))
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
				t.Fatalf("third connection: read %d bytes, %v; want it closed", n, err)
			}
			if n := e.Stats().Connections; n != 2 {
				t.Errorf("%d connections open, want the 2 held", n)
			}
			held[0].Close()
			abuseWait(t, "a slot to free", func() bool { return e.Stats().Connections == 1 })
			if resp, body := get(t, e.URL+"/"); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("after a slot freed: %d %q", resp.StatusCode, body)
			}
		})
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
// steps were written out.
func (a *abuseAttacker) flood(count int, budget time.Duration, step func(i int) error) int {
	a.conn.SetWriteDeadline(time.Now().Add(budget + 5*time.Second))
	deadline := time.Now().Add(budget)
	flushed, i := 0, 0
	for ; i < count && time.Now().Before(deadline) && !isClosed(a.closed); i++ {
		if step(i) != nil {
			return flushed
		}
		if i%64 == 63 {
			if a.bw.Flush() != nil {
				return flushed
			}
			flushed = i + 1
		}
	}
	if a.bw.Flush() != nil {
		return flushed
	}
	return i
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

// abuseRawOrigin is an origin that records the exact bytes of each request
// it receives, framed by its own strict reading, and answers "ok".
type abuseRawOrigin struct {
	addr string
	mu   sync.Mutex
	reqs []string // raw requests, complete or cut short
}

func abuseStartRawOrigin(t *testing.T) *abuseRawOrigin {
	l := listen(t)
	o := &abuseRawOrigin{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go o.serve(c)
		}
	}()
	return o
}

func (o *abuseRawOrigin) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for range 1000 {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var raw strings.Builder
		ok := o.readRequest(br, &raw)
		if raw.Len() > 0 {
			o.mu.Lock()
			o.reqs = append(o.reqs, raw.String())
			o.mu.Unlock()
		}
		if !ok {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

// readRequest copies one request into raw, reading its body by the
// framing its head declares; it reports whether the request was whole.
func (o *abuseRawOrigin) readRequest(br *bufio.Reader, raw *strings.Builder) bool {
	length, chunked := int64(0), false
	for {
		line, err := br.ReadString('\n')
		raw.WriteString(line)
		if err != nil {
			return false
		}
		if line == "\r\n" {
			break
		}
		name, value, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		switch strings.ToLower(name) {
		case "content-length":
			fmt.Sscan(value, &length)
		case "transfer-encoding":
			chunked = true
		}
	}
	if !chunked {
		_, err := io.CopyN(raw, br, length)
		return err == nil
	}
	for {
		line, err := br.ReadString('\n')
		raw.WriteString(line)
		if err != nil {
			return false
		}
		var size int64
		if _, err := fmt.Sscanf(line, "%x", &size); err != nil {
			return false
		}
		if size == 0 {
			break
		}
		if _, err := io.CopyN(raw, br, size+2); err != nil {
			return false
		}
	}
	for { // trailer section
		line, err := br.ReadString('\n')
		raw.WriteString(line)
		if err != nil {
			return false
		}
		if line == "\r\n" {
			return true
		}
	}
}

func (o *abuseRawOrigin) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reqs)
}

func (o *abuseRawOrigin) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return ""
	}
	return o.reqs[len(o.reqs)-1]
}

// abuseCheckClean checks that raw, a request head and body as an origin
// received it, is serialised the one unambiguous way: CRLF line ends and
// nothing else, no folding, no whitespace around names, trimmed values,
// one Host, at most one framing field, origin-form target, HTTP/1.1, and
// chunk-size lines without extensions.
func abuseCheckClean(raw string) error {
	head, body, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		return errors.New("head does not end with CRLF CRLF")
	}
	lines := strings.Split(head, "\r\n")
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n\x00") {
			return fmt.Errorf("bare CR, LF or NUL in line %q", l)
		}
	}
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "/") && parts[1] != "*" || parts[2] != "HTTP/1.1" {
		return fmt.Errorf("request line %q", lines[0])
	}
	count := map[string]int{}
	var te string
	for _, l := range lines[1:] {
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			return fmt.Errorf("folded or empty field line %q", l)
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || strings.TrimRight(name, " \t") != name || name == "" {
			return fmt.Errorf("field line %q", l)
		}
		if value != "" && value[0] != ' ' || strings.TrimSpace(value) != strings.TrimLeft(value, " ") {
			return fmt.Errorf("untrimmed value in %q", l)
		}
		for _, c := range []byte(value) {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return fmt.Errorf("control byte in %q", l)
			}
		}
		count[strings.ToLower(name)]++
		if strings.EqualFold(name, "Transfer-Encoding") {
			te = strings.TrimSpace(value)
		}
	}
	switch {
	case count["host"] != 1:
		return fmt.Errorf("%d Host fields", count["host"])
	case count["content-length"] > 1 || count["transfer-encoding"] > 1:
		return errors.New("framing field repeated")
	case count["content-length"] == 1 && count["transfer-encoding"] == 1:
		return errors.New("both Content-Length and Transfer-Encoding")
	case count["transfer-encoding"] == 1 && te != "chunked":
		return fmt.Errorf("Transfer-Encoding %q", te)
	}
	for _, hop := range []string{"connection", "keep-alive", "proxy-connection", "upgrade", "trailer", "expect"} {
		if count[hop] > 0 {
			return fmt.Errorf("hop-by-hop field %s forwarded", hop)
		}
	}
	if te == "chunked" {
		for rest := body; rest != ""; {
			line, after, _ := strings.Cut(rest, "\r\n")
			var size int
			if n, err := fmt.Sscanf(line, "%x", &size); n != 1 || err != nil || fmt.Sprintf("%x", size) != strings.ToLower(line) {
				return fmt.Errorf("chunk-size line %q", line)
			}
			if size == 0 {
				break
			}
			rest = after[min(len(after), size+2):]
		}
	}
	return nil
}

func TestCleanCheckFindsAmbiguousRequests(t *testing.T) {
	const h = "GET / HTTP/1.1\r\nHost: a\r\n"
	for _, raw := range []string{
		h + "X-A: b\r\n c\r\n\r\n",
		h + "X-A: b\n\r\n",
		h + "X-A : b\r\n\r\n",
		h + "X-A: b \r\n\r\n",
		h + "Host: b\r\n\r\n",
		h + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		h + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		h + "Transfer-Encoding: chunked\r\n\r\n1;x\r\na\r\n0\r\n\r\n",
		h + "Connection: close\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	} {
		if abuseCheckClean(raw) == nil {
			t.Errorf("%q passed the check", raw)
		}
	}
	if err := abuseCheckClean(h + "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"); err != nil {
		t.Errorf("a clean request failed the check: %v", err)
	}
}

func TestMalformedCorpusOverTCPNeverReachesTheOrigin(t *testing.T) {
	if len(malformed.Cases) < 40 {
		t.Fatalf("the corpus has %d cases, want at least 40", len(malformed.Cases))
	}
	origin := abuseStartRawOrigin(t)
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin.addr)
	host := strings.TrimPrefix(e.URL, "http://")
	var upstream atomic.Int64
	t.Cleanup(func() {
		t.Logf("%d cases; %d broken bodies behind valid heads started upstream and were cut", len(malformed.Cases), upstream.Load())
	})
	for _, tc := range malformed.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			before := origin.count()
			if got := abuseRawStatus(t, host, tc.Raw); got != tc.Status {
				t.Errorf("status %d, want %d", got, tc.Status)
			}
			seen := origin.count() - before
			if !tc.Body && seen > 0 {
				t.Fatalf("the origin received a request from a malformed head:\n%q", origin.last())
			}
			if seen > 0 {
				upstream.Add(1)
				// A valid head with a broken body may have started
				// upstream; what went out must still be clean, and cut.
				if err := abuseCheckClean(origin.last() + "\r\n\r\n"); err != nil && !strings.Contains(err.Error(), "chunk") {
					t.Errorf("upstream head of a broken body: %v\n%q", err, origin.last())
				}
			}
		})
	}
}

// abuseRawStatus sends raw on a new connection and returns the status of
// the final answer, or 0 when there is none.
func abuseRawStatus(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, raw)
	br := bufio.NewReader(conn)
	for range 4 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 {
			return resp.StatusCode
		}
	}
	return 0
}

func TestUpstreamRequestIsReserialisedCleanly(t *testing.T) {
	origin := abuseStartRawOrigin(t)
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin.addr)
	host := strings.TrimPrefix(e.URL, "http://")
	h := "Host: " + host + "\r\n"
	cases := []struct {
		name            string
		raw             string
		present, absent []string
	}{
		{"duplicate identical Content-Length", "POST /a HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
			[]string{"Content-Length: 5\r\n\r\nhello"}, nil},
		{"Content-Length with leading zeros", "POST /a HTTP/1.1\r\n" + h + "Content-Length: 005\r\n\r\nhello",
			[]string{"Content-Length: 5\r\n"}, []string{"005"}},
		{"chunk extensions and trailer", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5;ext=\"x\"\r\nhello\r\n0;last\r\nX-Trailer: t\r\n\r\n",
			[]string{"hello"}, []string{"ext", "last"}},
		{"mixed-case chunked", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			[]string{"hello"}, []string{"ChUnKeD"}},
		{"untrimmed field values", "GET /a HTTP/1.1\r\n" + h + "X-Pad: \t value \t \r\n\r\n",
			[]string{"X-Pad: value\r\n"}, nil},
		{"hop-by-hop fields, some named in Connection", "GET /a HTTP/1.1\r\n" + h + "Connection: X-Hop, keep-alive\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nTrailer: X-T\r\nUpgrade: h2c\r\n\r\n",
			nil, []string{"X-Hop", "timeout=5", "gzip", "h2c"}},
		{"absolute-form target", "GET http://" + host + "/abs?q=1 HTTP/1.1\r\n" + h + "\r\n",
			[]string{"GET /abs?q=1 HTTP/1.1\r\n"}, []string{"http://"}},
		{"HTTP/1.0 with a body", "POST /old HTTP/1.0\r\n" + h + "Content-Length: 2\r\n\r\nhi",
			[]string{"POST /old HTTP/1.1\r\n", "Content-Length: 2\r\n\r\nhi"}, nil},
		{"Expect 100-continue", "POST /a HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
			[]string{"hi"}, []string{"100-continue"}},
		{"empty field value", "GET /a HTTP/1.1\r\n" + h + "X-Empty:\r\n\r\n",
			nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := origin.count()
			if got := abuseRawStatus(t, host, tc.raw); got != 200 {
				t.Fatalf("status %d", got)
			}
			if origin.count() != before+1 {
				t.Fatalf("origin received %d requests, want 1", origin.count()-before)
			}
			got := origin.last()
			if err := abuseCheckClean(got); err != nil {
				t.Errorf("%v in\n%q", err, got)
			}
			for _, s := range tc.present {
				if !strings.Contains(got, s) {
					t.Errorf("%q missing from\n%q", s, got)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(got, s) {
					t.Errorf("%q reached the origin:\n%q", s, got)
				}
			}
		})
	}
}

func TestRequestTimeoutEndsAStalledResponseBody(t *testing.T) {
	t.Parallel()
	originGaveUp := make(chan struct{})
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		w.(http.Flusher).Flush()
		select { // the other half never comes
		case <-r.Context().Done():
			close(originGaveUp)
		case <-time.After(20 * time.Second):
		}
	}))
	e := startEdge(t, abuseConfig+"timeouts: {request: 1s}\n", "{{ORIGIN}}", origin)
	start := time.Now()
	// A POST goes straight to the origin; a GET would fill the cache, and
	// a fill is not bound to one client's request.
	resp, err := abuseH1Client.Post(e.URL+"/stall", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(b) != "01234" {
		t.Fatalf("body %q, %v; want the first half, then an error", b, err)
	}
	select {
	case <-originGaveUp:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream connection stayed open after the request timeout")
	}
	t.Logf("stalled body cut after %v", time.Since(start).Round(10*time.Millisecond))
}

func TestSlowPostOverHTTP2Gets408(t *testing.T) {
	t.Parallel()
	e := startEdge(t, abuseConfig+"timeouts: {body_read: 1s}\n", "{{ORIGIN}}", abuseOrigin(t, 0))
	addr := strings.TrimPrefix(e.URL, "http://")
	stop := abuseServing(t, abuseH2CClient(), e.URL+"/")
	a := abuseDial(t, addr)
	a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headers("POST", "/up", "content-length", "102400"), EndHeaders: true})
	a.bw.Flush()
	// 100 bytes every 200ms: 500 B/s, under the 1 KiB/s minimum; each
	// chunk comes well within body_read.
	start := time.Now()
	sent := 0
	for range 100 {
		if a.status[408].Load() > 0 || isClosed(a.closed) || a.fr.WriteData(1, false, make([]byte, 100)) != nil || a.bw.Flush() != nil {
			break
		}
		sent += 100
		select { // pacing, not a timing assertion
		case <-a.closed:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if a.status[408].Load() != 1 {
		t.Fatalf("slow POST over HTTP/2: no 408 after %d body bytes in %v (GOAWAY %s, %d resets)", sent, time.Since(start), a.goawayCode(), a.resets.Load())
	}
	t.Logf("slow HTTP/2 POST answered 408 after %d body bytes in %v; normal client served %d requests meanwhile",
		sent, time.Since(start).Round(100*time.Millisecond), stop())
}
