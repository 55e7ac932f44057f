package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/outpost-edge/outpost/httphead"
)

type http2ErrCode = http2.ErrCode

// Windows Outpost grants for request bodies. A stream may have streamWindow
// bytes in flight, the connection connWindow in all; the connection's
// credit returns as the engine reads the bodies, so a connection holds at
// most connWindow of unread body.
const (
	streamWindow  = 256 << 10
	connWindow    = 1 << 20
	maxFrame      = 16384 // SETTINGS_MAX_FRAME_SIZE Outpost accepts: the default
	maxWindow     = 1<<31 - 1
	flushAt       = 64 << 10 // frames buffered beyond this are written at once
	takeoverAfter = time.Millisecond
)

// connErr ends the connection with GOAWAY and code.
type connErr struct {
	code   http2ErrCode
	reason string
}

func (e connErr) Error() string { return "h2: " + e.code.String() + ": " + e.reason }

// conn is one HTTP/2 connection.
//
// One goroutine at a time runs the loop: it reads frames and runs the
// engine inline for each request without a body, so a cache hit costs no
// goroutine. When a request blocks (an origin fetch, a wait for flow
// control credit), the loop moves on to a new goroutine after
// takeoverAfter, and the blocked one finishes its stream alone. A request
// with a body runs on its own goroutine from the start: its body arrives
// through the loop.
//
// Frames to send collect in wbuf and leave in one write at the end of a
// loop turn (when the next read would block), or at once from a stream
// running on its own goroutine.
type conn struct {
	srv    *Server
	nc     net.Conn
	br     *bufio.Reader
	client netip.AddrPort
	tls    *tls.ConnectionState
	ja4    string
	altSvc []byte
	scheme []byte
	serve  Handler
	done   chan struct{}

	// owned by the goroutine running the loop
	dec      *hpack.Decoder
	hb       headBlock
	maxSeen  uint32 // highest stream the client opened
	budget   budget
	pinged   bool
	armed    bool        // takeover timer running
	timer    *time.Timer // fires takeover
	lastRead time.Time

	inline atomic.Pointer[stream] // the stream the loop is running inline
	wg     sync.WaitGroup         // streams running on goroutines of their own

	mu        sync.Mutex
	wcond     sync.Cond // a write finished
	streams   map[uint32]*stream
	free      []*stream
	wbuf      []byte
	spare     []byte
	writing   bool
	werr      error
	lastFrame int // offset in wbuf of the last frame appended, -1 if none
	armedAt   time.Time
	sendWin   int64 // connection send window
	peerInit  int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame int   // the client's SETTINGS_MAX_FRAME_SIZE
	recvWin   int64 // connection credit the client still has
	unacked   int64 // body bytes read, credit not yet returned
	goingAway bool
	closed    bool
	woken     bool // the loop's read was ended on purpose
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

func newConn(s *Server, nc net.Conn, client netip.AddrPort, tlsState *tls.ConnectionState, ja4 string, serve Handler) *conn {
	c := &conn{srv: s, nc: nc, client: client, tls: tlsState, ja4: ja4, serve: serve,
		done: make(chan struct{}), streams: map[uint32]*stream{}, lastFrame: -1,
		sendWin: 65535, peerInit: 65535, peerFrame: 16384, recvWin: connWindow}
	c.scheme = schemeHTTP
	if tlsState != nil {
		c.scheme = schemeHTTPS
	}
	c.wcond.L = &c.mu
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(nc)
	c.dec = hpack.NewDecoder(hpackTable, c.field)
	c.dec.SetMaxStringLength(s.lim.MaxHeaderBytes)
	c.budget = budget{tokens: h2Burst, last: time.Now()}
	c.timer = time.AfterFunc(time.Hour, c.takeover)
	c.timer.Stop()
	return c
}

var (
	schemeHTTP  = []byte("http")
	schemeHTTPS = []byte("https")
)

// run serves the connection; it returns when the connection has ended and
// every stream has finished.
func (c *conn) run(drain context.Context) {
	stop := context.AfterFunc(drain, c.drain)
	defer stop()
	c.mu.Lock()
	c.wbuf = appendSettings(c.wbuf, c.srv.lim)
	c.wbuf = appendWindowUpdate(c.wbuf, 0, connWindow-65535)
	c.mu.Unlock()
	if err := c.readPreface(); err != nil {
		c.end(err)
		return
	}
	if c.loop() {
		return
	}
	<-c.done
}

// readPreface reads the client connection preface (RFC 9113 section 3.4):
// the magic string, then a SETTINGS frame.
func (c *conn) readPreface() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.lim.ReadIdleTimeout))
	b, err := c.br.Peek(len(http2.ClientPreface))
	if err != nil || string(b) != http2.ClientPreface {
		return connErr{http2.ErrCodeProtocol, "invalid connection preface"}
	}
	_, _ = c.br.Discard(len(b))
	if err := c.flush(); err != nil {
		return err
	}
	b, err = c.br.Peek(9)
	if err != nil {
		return err
	}
	if http2.FrameType(b[3]) != http2.FrameSettings || http2.Flags(b[4]).Has(http2.FlagSettingsAck) {
		return connErr{http2.ErrCodeProtocol, "preface not followed by SETTINGS"}
	}
	return nil
}

// loop reads and handles frames until the connection ends (it returns
// true) or another goroutine takes the loop over (false).
func (c *conn) loop() bool {
	for {
		fh, payload, err := c.readFrame()
		if err == nil {
			err = c.handle(fh, payload)
		}
		if err == errTakenOver {
			return false
		}
		if err != nil {
			c.end(err)
			return true
		}
	}
}

var errTakenOver = errors.New("h2: loop taken over")

// readFrame reads the next frame; its payload is valid until the next call.
// Before a read that would wait, the turn ends: frames buffered for the
// client leave in one write.
func (c *conn) readFrame() (http2.FrameHeader, []byte, error) {
	for c.br.Buffered() < 9 {
		if err := c.endTurn(); err != nil {
			return http2.FrameHeader{}, nil, err
		}
		if _, err := c.br.Peek(9); err != nil {
			if err := c.readErr(err); err != nil {
				return http2.FrameHeader{}, nil, err
			}
		}
	}
	b, _ := c.br.Peek(9)
	fh := http2.FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     http2.FrameType(b[3]),
		Flags:    http2.Flags(b[4]),
		StreamID: binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1),
	}
	if fh.Length > maxFrame {
		return fh, nil, connErr{http2.ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE"}
	}
	if cost := frameCost(fh); cost > 0 && !c.budget.spend(cost) {
		c.srv.Floods.Add(1)
		c.srv.log().Info("HTTP/2 flood: connection closed", "client", c.client.String())
		return fh, nil, connErr{http2.ErrCodeEnhanceYourCalm, "flood"}
	}
	n := 9 + int(fh.Length)
	for c.br.Buffered() < n {
		if err := c.endTurn(); err != nil {
			return fh, nil, err
		}
		if _, err := c.br.Peek(n); err != nil {
			if err := c.readErr(err); err != nil {
				return fh, nil, err
			}
		}
	}
	b, _ = c.br.Peek(n)
	_, _ = c.br.Discard(n)
	c.pinged = false
	return fh, b[9:], nil
}

// endTurn writes what the turn produced and arms the read deadline for the
// wait ahead.
func (c *conn) endTurn() error {
	if c.armed {
		c.timer.Stop()
		c.armed = false
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	open := len(c.streams)
	if c.goingAway && open == 0 {
		return errDone
	}
	wait := c.srv.lim.IdleTimeout
	if open > 0 {
		wait = c.srv.lim.ReadIdleTimeout
	}
	now := time.Now()
	// The deadline moves once a second at most: a timer update per turn
	// is not free. It is set with c.mu held so that a wake cannot come
	// between the check above and the wait.
	if now.Sub(c.lastRead) > time.Second && !c.woken {
		c.lastRead = now
		_ = c.nc.SetReadDeadline(now.Add(wait))
	}
	return nil
}

// errDone ends a connection that went away gracefully: GOAWAY was sent and
// its last stream has finished.
var errDone = errors.New("h2: connection done")

// readErr maps a read error: a deadline that passed with streams open
// sends a PING to see whether the client is still there; a second one, or
// one with nothing open, ends the connection.
func (c *conn) readErr(err error) error {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return err
	}
	c.lastRead = time.Time{}
	c.mu.Lock()
	open, away, woken := len(c.streams), c.goingAway, c.woken
	c.woken = false
	c.mu.Unlock()
	if away && open == 0 {
		return errDone
	}
	if woken {
		return nil
	}
	if open == 0 {
		return connErr{http2.ErrCodeNo, "idle"}
	}
	if c.pinged {
		return err
	}
	c.pinged = true
	c.mu.Lock()
	c.wbuf = appendFrame(c.wbuf, http2.FramePing, 0, 0, pingData[:])
	c.mu.Unlock()
	return nil
}

var pingData = [8]byte{'o', 'u', 't', 'p', 'o', 's', 't', 0}

// end closes the connection after err: with GOAWAY when it is a protocol
// error, after the last stream when it is errDone. It waits for the
// streams still running.
func (c *conn) end(err error) {
	var ce connErr
	code, sendGoaway := http2.ErrCodeNo, false
	if err == errDone {
		sendGoaway = true
	} else if errors.As(err, &ce) {
		code, sendGoaway = ce.code, true
		if ce.code != http2.ErrCodeNo {
			c.srv.ProtocolErrors.Add(1)
			c.srv.log().Debug("HTTP/2 protocol error", "client", c.client.String(), "error", err.Error())
		}
	}
	c.mu.Lock()
	if sendGoaway {
		c.wbuf = appendGoaway(c.wbuf, c.maxSeen, code)
	}
	// A stream's write in progress would leave the GOAWAY behind: wait
	// for it (the write deadline bounds the wait).
	for c.writing && c.werr == nil {
		c.wcond.Wait()
	}
	c.mu.Unlock()
	_ = c.flush()
	c.mu.Lock()
	c.closed = true
	for _, st := range c.streams {
		st.abort(errConnClosed)
	}
	c.mu.Unlock()
	if sendGoaway {
		lingerClose(c.nc) // a client's frames after its own GOAWAY must not reset ours
	}
	_ = c.nc.Close()
	c.timer.Stop()
	c.wg.Wait()
	c.br.Reset(nil)
	readerPool.Put(c.br)
	close(c.done)
}

var errConnClosed = errors.New("h2: connection closed")

// lingerClose lets the client read the GOAWAY before the close: closing
// with unread bytes would reset the connection and lose it.
func lingerClose(nc net.Conn) {
	inner := nc // an h2c connection comes wrapped (its preface read ahead)
	for {
		w, ok := inner.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		inner = w.NetConn()
	}
	if cw, ok := inner.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, 256<<10))
	}
}

// drain starts a graceful end: GOAWAY, then the connection ends when its
// open streams have finished.
func (c *conn) drain() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	// The last stream id is not known here (the loop owns it): the
	// largest legal one tells the client nothing in flight is refused.
	c.wbuf = appendGoaway(c.wbuf, maxWindow, http2.ErrCodeNo)
	c.wake()
	c.mu.Unlock()
	_ = c.flush()
}

// wake makes the loop look at the connection again, by ending its read;
// called with c.mu held.
func (c *conn) wake() {
	c.woken = true
	_ = c.nc.SetReadDeadline(time.Now())
}

// takeover moves the loop to a new goroutine when the stream it runs
// inline is still running: called by the timer, and by a stream that is
// about to wait.
func (c *conn) takeover() {
	st := c.inline.Load()
	if st != nil && c.inline.CompareAndSwap(st, nil) {
		go c.loop()
	}
}

// handle acts on one frame (RFC 9113 section 6).
func (c *conn) handle(fh http2.FrameHeader, p []byte) error {
	if c.hb.open && (fh.Type != http2.FrameContinuation || fh.StreamID != c.hb.id) {
		return connErr{http2.ErrCodeProtocol, "header block interrupted"}
	}
	switch fh.Type {
	case http2.FrameData:
		return c.onData(fh, p)
	case http2.FrameHeaders:
		return c.onHeaders(fh, p)
	case http2.FrameContinuation:
		if !c.hb.open {
			return connErr{http2.ErrCodeProtocol, "CONTINUATION without HEADERS"}
		}
		return c.onBlock(fh.Flags.Has(http2.FlagContinuationEndHeaders), p)
	case http2.FramePriority:
		if fh.StreamID == 0 {
			return connErr{http2.ErrCodeProtocol, "PRIORITY on stream 0"}
		}
		if fh.Length != 5 {
			return c.resetStream(fh.StreamID, http2.ErrCodeFrameSize)
		}
		if binary.BigEndian.Uint32(p)&(1<<31-1) == fh.StreamID {
			return c.resetStream(fh.StreamID, http2.ErrCodeProtocol)
		}
		return nil // priorities are advisory; Outpost ignores them
	case http2.FrameRSTStream:
		return c.onReset(fh, p)
	case http2.FrameSettings:
		return c.onSettings(fh, p)
	case http2.FramePushPromise:
		return connErr{http2.ErrCodeProtocol, "PUSH_PROMISE from a client"}
	case http2.FramePing:
		return c.onPing(fh, p)
	case http2.FrameGoAway:
		if fh.StreamID != 0 {
			return connErr{http2.ErrCodeProtocol, "GOAWAY on a stream"}
		}
		c.mu.Lock()
		c.goingAway = true
		c.mu.Unlock()
		return nil
	case http2.FrameWindowUpdate:
		return c.onWindowUpdate(fh, p)
	}
	return nil // unknown frame types are ignored (RFC 9113 section 4.1)
}

func (c *conn) onPing(fh http2.FrameHeader, p []byte) error {
	switch {
	case fh.StreamID != 0:
		return connErr{http2.ErrCodeProtocol, "PING on a stream"}
	case fh.Length != 8:
		return connErr{http2.ErrCodeFrameSize, "PING of wrong length"}
	case fh.Flags.Has(http2.FlagPingAck):
		return nil
	}
	c.mu.Lock()
	c.wbuf = appendFrame(c.wbuf, http2.FramePing, http2.FlagPingAck, 0, p)
	c.mu.Unlock()
	return nil
}

func (c *conn) onSettings(fh http2.FrameHeader, p []byte) error {
	switch {
	case fh.StreamID != 0:
		return connErr{http2.ErrCodeProtocol, "SETTINGS on a stream"}
	case fh.Flags.Has(http2.FlagSettingsAck):
		if fh.Length != 0 {
			return connErr{http2.ErrCodeFrameSize, "SETTINGS ACK with a payload"}
		}
		return nil
	case fh.Length%6 != 0:
		return connErr{http2.ErrCodeFrameSize, "SETTINGS of wrong length"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Each setting applies in order: a frame may carry one twice
	// (RFC 9113 section 6.5.3).
	for ; len(p) > 0; p = p[6:] {
		id, v := http2.SettingID(binary.BigEndian.Uint16(p)), binary.BigEndian.Uint32(p[2:])
		switch id {
		case http2.SettingEnablePush:
			if v > 1 {
				return connErr{http2.ErrCodeProtocol, "SETTINGS_ENABLE_PUSH not 0 or 1"}
			}
		case http2.SettingInitialWindowSize:
			if v > maxWindow {
				return connErr{http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE too large"}
			}
			delta := int64(v) - c.peerInit
			c.peerInit = int64(v)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > maxWindow {
					return connErr{http2.ErrCodeFlowControl, "stream window overflow"}
				}
				st.signal()
			}
		case http2.SettingMaxFrameSize:
			if v < 16384 || v > 1<<24-1 {
				return connErr{http2.ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE out of range"}
			}
			c.peerFrame = int(v)
		}
	}
	c.wbuf = appendFrame(c.wbuf, http2.FrameSettings, http2.FlagSettingsAck, 0, nil)
	return nil
}

func (c *conn) onWindowUpdate(fh http2.FrameHeader, p []byte) error {
	if fh.Length != 4 {
		return connErr{http2.ErrCodeFrameSize, "WINDOW_UPDATE of wrong length"}
	}
	inc := int64(binary.BigEndian.Uint32(p) & (1<<31 - 1))
	if fh.StreamID == 0 {
		if inc == 0 {
			return connErr{http2.ErrCodeProtocol, "WINDOW_UPDATE of 0"}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.sendWin += inc
		if c.sendWin > maxWindow {
			return connErr{http2.ErrCodeFlowControl, "connection window overflow"}
		}
		for _, st := range c.streams {
			st.signal()
		}
		return nil
	}
	if fh.StreamID > c.maxSeen {
		return connErr{http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
	}
	c.mu.Lock()
	st := c.streams[fh.StreamID]
	if st == nil || st.resetSent {
		c.mu.Unlock()
		return nil // a closed stream: the update may have crossed its end
	}
	if inc == 0 {
		c.mu.Unlock()
		return c.resetStream(fh.StreamID, http2.ErrCodeProtocol)
	}
	st.sendWin += inc
	over := st.sendWin > maxWindow
	st.signal()
	c.mu.Unlock()
	if over {
		return c.resetStream(fh.StreamID, http2.ErrCodeFlowControl)
	}
	return nil
}

func (c *conn) onReset(fh http2.FrameHeader, p []byte) error {
	switch {
	case fh.StreamID == 0:
		return connErr{http2.ErrCodeProtocol, "RST_STREAM on stream 0"}
	case fh.Length != 4:
		return connErr{http2.ErrCodeFrameSize, "RST_STREAM of wrong length"}
	case fh.StreamID > c.maxSeen:
		return connErr{http2.ErrCodeProtocol, "RST_STREAM on an idle stream"}
	}
	c.mu.Lock()
	if st := c.streams[fh.StreamID]; st != nil {
		st.resetSent = true // the stream is closed both ways: nothing more goes out
		st.peerReset = true
		st.abort(errStreamReset)
	}
	c.mu.Unlock()
	return nil
}

var errStreamReset = errors.New("h2: stream reset by the client")

// resetStream sends RST_STREAM and closes the stream, if it is open.
func (c *conn) resetStream(id uint32, code http2ErrCode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked(id, code)
	return nil
}

func (c *conn) resetLocked(id uint32, code http2ErrCode) {
	if st := c.streams[id]; st != nil {
		if st.resetSent {
			return
		}
		st.resetSent = true
		st.abort(errStreamReset)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	c.wbuf = appendFrame(c.wbuf, http2.FrameRSTStream, 0, id, b[:])
}

// onData takes request body bytes (RFC 9113 section 6.1), within the
// windows Outpost granted.
func (c *conn) onData(fh http2.FrameHeader, p []byte) error {
	if fh.StreamID == 0 {
		return connErr{http2.ErrCodeProtocol, "DATA on stream 0"}
	}
	if fh.StreamID > c.maxSeen {
		return connErr{http2.ErrCodeProtocol, "DATA on an idle stream"}
	}
	n := int64(len(p))
	data, err := unpad(fh, p)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.recvWin {
		return connErr{http2.ErrCodeFlowControl, "DATA beyond the connection window"}
	}
	c.recvWin -= n
	// Padding and bytes for a closed stream are credited back now: they
	// will never be read.
	c.credit(n - int64(len(data)))
	st := c.streams[fh.StreamID]
	if st != nil && st.peerReset {
		return connErr{http2.ErrCodeStreamClosed, "DATA after RST_STREAM"}
	}
	if st == nil || st.remoteDone || st.resetSent {
		c.credit(int64(len(data)))
		c.resetLocked(fh.StreamID, http2.ErrCodeStreamClosed)
		return nil
	}
	if n > st.recvWin {
		c.credit(int64(len(data)))
		c.resetLocked(fh.StreamID, http2.ErrCodeFlowControl)
		return nil
	}
	st.recvWin -= n
	st.unacked += n - int64(len(data)) // padding
	st.received += int64(len(data))
	if cl := st.req.ContentLength; cl >= 0 && (st.received > cl || fh.Flags.Has(http2.FlagDataEndStream) && st.received != cl) {
		c.credit(int64(len(data)))
		c.resetLocked(fh.StreamID, http2.ErrCodeProtocol) // RFC 9113 section 8.1.1
		return nil
	}
	st.in = append(st.in, data...)
	if fh.Flags.Has(http2.FlagDataEndStream) {
		st.remoteDone = true
	}
	st.signal()
	return nil
}

// credit returns n bytes of connection window to the client once half of
// the window is owed: one WINDOW_UPDATE per half window, not per read.
func (c *conn) credit(n int64) {
	c.unacked += n
	if c.unacked >= connWindow/2 {
		c.wbuf = appendWindowUpdate(c.wbuf, 0, uint32(c.unacked))
		c.recvWin += c.unacked
		c.unacked = 0
	}
}

// unpad strips the padding of a DATA or HEADERS frame.
func unpad(fh http2.FrameHeader, p []byte) ([]byte, error) {
	if !fh.Flags.Has(http2.FlagDataPadded) { // the same bit for HEADERS
		return p, nil
	}
	if len(p) == 0 || int(p[0]) >= len(p) {
		return nil, connErr{http2.ErrCodeProtocol, "padding longer than the frame"}
	}
	return p[1 : len(p)-int(p[0])], nil
}

// onHeaders starts a header block: a new request, or the trailers of one
// whose body is arriving.
func (c *conn) onHeaders(fh http2.FrameHeader, p []byte) error {
	id := fh.StreamID
	if id == 0 || id%2 == 0 {
		return connErr{http2.ErrCodeProtocol, "HEADERS on an even stream"}
	}
	p, err := unpad(fh, p)
	if err != nil {
		return err
	}
	selfDep := false
	if fh.Flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return connErr{http2.ErrCodeFrameSize, "HEADERS too short for its priority"}
		}
		selfDep = binary.BigEndian.Uint32(p)&(1<<31-1) == id
		p = p[5:]
	}
	hb := &c.hb
	*hb = headBlock{pseudo: hb.pseudo[:0], id: id, end: fh.Flags.Has(http2.FlagHeadersEndStream), open: true}
	c.dec.SetEmitEnabled(true)
	c.mu.Lock()
	st := c.streams[id]
	switch {
	case id > c.maxSeen:
		c.maxSeen = id
		switch {
		case selfDep:
			hb.refuse = http2.ErrCodeProtocol
		case c.goingAway:
			hb.refuse = http2.ErrCodeRefusedStream
		case len(c.streams) >= int(c.srv.lim.MaxConcurrentStreams):
			c.srv.countError("over_max_streams")
			hb.refuse = http2.ErrCodeRefusedStream
		default:
			hb.st = c.newStream(id)
		}
	case st != nil && st.peerReset:
		c.mu.Unlock()
		return connErr{http2.ErrCodeStreamClosed, "HEADERS after RST_STREAM"}
	case st != nil && !st.remoteDone && !st.resetSent:
		if !hb.end {
			c.mu.Unlock()
			return connErr{http2.ErrCodeProtocol, "trailers without END_STREAM"}
		}
		hb.st, hb.trailers = st, true
	case st != nil:
		hb.refuse = http2.ErrCodeStreamClosed // half-closed: the request was whole
	case id == c.maxSeen:
		c.mu.Unlock()
		return connErr{http2.ErrCodeStreamClosed, "HEADERS on a closed stream"}
	default:
		c.mu.Unlock()
		return connErr{http2.ErrCodeProtocol, "HEADERS on a closed stream"}
	}
	c.mu.Unlock()
	return c.onBlock(fh.Flags.Has(http2.FlagHeadersEndHeaders), p)
}

// onBlock feeds a header block fragment to the decoder; at the end of the
// block the request starts.
func (c *conn) onBlock(endHeaders bool, frag []byte) error {
	if _, err := c.dec.Write(frag); err != nil {
		return connErr{http2.ErrCodeCompression, err.Error()}
	}
	if !endHeaders {
		return nil
	}
	if err := c.dec.Close(); err != nil {
		return connErr{http2.ErrCodeCompression, err.Error()}
	}
	hb := &c.hb
	hb.open = false
	st := hb.st
	hb.st = nil
	switch {
	case hb.refuse != 0 || st == nil:
		return c.resetStream(hb.id, hb.refuse)
	case hb.trailers:
		return c.onTrailers(st)
	}
	if reason := hb.finishRequest(st, c.scheme); reason != "" {
		c.srv.countError("malformed_request")
		c.mu.Lock()
		c.resetLocked(hb.id, http2.ErrCodeProtocol)
		c.release(st)
		c.mu.Unlock()
		return nil
	}
	st.remoteDone = hb.end
	if hb.tooBig {
		// Served like any request, so that the engine answers the 431
		// (server.CheckStream) with its trace and access log line.
		c.srv.countError("header_list_too_large")
		st.tooBig = true
	}
	if !hb.end {
		c.wg.Add(1)
		go st.runAlone()
		return nil
	}
	return c.runInline(st)
}

// onTrailers ends a request body with its trailers.
func (c *conn) onTrailers(st *stream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hb.malformed != "" || c.hb.tooBig {
		c.resetLocked(st.id, http2.ErrCodeProtocol)
		return nil
	}
	if cl := st.req.ContentLength; cl >= 0 && st.received != cl {
		c.resetLocked(st.id, http2.ErrCodeProtocol)
		return nil
	}
	st.remoteDone = true
	st.signal()
	return nil
}

// runInline serves a request on the loop's goroutine. If the stream is
// still running when takeoverAfter has passed, the loop has gone on in a
// new goroutine: this one finishes the stream and leaves.
func (c *conn) runInline(st *stream) error {
	if !c.armed {
		c.armed = true
		c.timer.Reset(takeoverAfter)
	}
	// Counted here, on the loop's goroutine, so that the count never
	// rises from zero while end waits on it: a takeover leaves this
	// goroutine to finish the stream, and the loop's end waits for it.
	c.wg.Add(1)
	defer c.wg.Done()
	// Everything the loop owns is written before this store, which the
	// takeover's compare-and-swap reads: the next loop sees it all.
	c.inline.Store(st)
	st.serve()
	// The check comes before finish frees the stream: once free, the
	// loop may run it inline again.
	owned := c.inline.CompareAndSwap(st, nil)
	st.finish()
	if !owned {
		_ = c.flush()
		return errTakenOver
	}
	return nil
}

// newStream takes a stream from the free list; called with c.mu held.
func (c *conn) newStream(id uint32) *stream {
	var st *stream
	if n := len(c.free); n > 0 {
		st, c.free = c.free[n-1], c.free[:n-1]
	} else {
		st = newStream(c)
	}
	st.reset(id, c.peerInit)
	c.streams[id] = st
	return st
}

// release removes a finished stream; called with c.mu held.
func (c *conn) release(st *stream) {
	delete(c.streams, st.id)
	if unread := int64(len(st.in) - st.off); unread > 0 {
		c.credit(unread)
	}
	st.in, st.off = st.in[:0], 0
	// A free stream keeps no large buffer: a client that sent big heads
	// or bodies once must not hold their memory while idle.
	if cap(st.in) > 32<<10 {
		st.in = nil
	}
	if st.req.Header.Size() > 16<<10 {
		st.req = httphead.Request{}
	}
	st.ctx.cancel(context.Canceled)
	c.free = append(c.free, st)
	if c.goingAway && len(c.streams) == 0 {
		c.wake()
	}
}

// Frame writing. Frames are appended to c.wbuf with c.mu held.

func appendFrame(b []byte, t http2.FrameType, flags http2.Flags, id uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), byte(t), byte(flags))
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, payload...)
}

func appendSettings(b []byte, lim Limits) []byte {
	set := func(b []byte, id http2.SettingID, v uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(b, uint16(id)), v)
	}
	b = appendFrame(b, http2.FrameSettings, 0, 0, nil)
	start := len(b)
	b = set(b, http2.SettingMaxConcurrentStreams, lim.MaxConcurrentStreams)
	b = set(b, http2.SettingInitialWindowSize, streamWindow)
	b = set(b, http2.SettingMaxHeaderListSize, uint32(lim.MaxHeaderBytes))
	n := len(b) - start
	b[start-9], b[start-8], b[start-7] = byte(n>>16), byte(n>>8), byte(n)
	return b
}

func appendWindowUpdate(b []byte, id, inc uint32) []byte {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], inc)
	return appendFrame(b, http2.FrameWindowUpdate, 0, id, p[:])
}

func appendGoaway(b []byte, last uint32, code http2ErrCode) []byte {
	var p [8]byte
	binary.BigEndian.PutUint32(p[:], last)
	binary.BigEndian.PutUint32(p[4:], uint32(code))
	return appendFrame(b, http2.FrameGoAway, 0, 0, p[:])
}

// flush writes the buffered frames. One goroutine writes at a time; frames
// appended meanwhile leave with its next write.
func (c *conn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.writing && len(c.wbuf) > 0 && c.werr == nil {
		b := c.wbuf
		c.wbuf, c.spare = c.spare[:0], nil
		c.writing, c.lastFrame = true, -1
		c.mu.Unlock()
		c.armWrite()
		_, err := c.nc.Write(b)
		c.mu.Lock()
		c.spare, c.writing = b[:0], false
		if err != nil {
			c.werr = err
			_ = c.nc.Close() // the loop must not wait on a dead connection
		}
		c.wcond.Broadcast()
	}
	return c.werr
}

// armWrite sets the write deadline, moving it once a quarter of the write
// timeout has passed rather than on every write. Only the goroutine that
// is writing calls it.
func (c *conn) armWrite() {
	now := time.Now()
	d := c.srv.lim.WriteTimeout
	if now.Sub(c.armedAt) < d/4 {
		return
	}
	c.armedAt = now
	_ = c.nc.SetWriteDeadline(now.Add(d))
}
