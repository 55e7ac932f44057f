package h2

import (
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 frames that make the server work without doing any for the client
// draw on a per-connection budget: a burst of h2Burst, refilled at h2Refill
// a second. A client that runs it dry is flooding, and its connection ends.
// Legitimate clients send such frames by the handful (a SETTINGS at the
// start, a keep-alive PING, a RST_STREAM per cancelled call).
const (
	h2Burst  = 1000
	h2Refill = 100
)

// budget is a connection's allowance of frames that do no work.
type budget struct {
	tokens float64
	last   time.Time
}

// frameCost is 1 for a frame that does no work for the client, else 0.
func frameCost(fh http2.FrameHeader) int {
	switch fh.Type {
	case http2.FramePing, http2.FrameSettings:
		if !fh.Flags.Has(http2.FlagPingAck) { // the same bit for SETTINGS
			return 1
		}
	case http2.FrameRSTStream, http2.FramePriority, http2.FrameContinuation:
		return 1
	case http2.FrameData, http2.FrameHeaders:
		if fh.Length == 0 && !fh.Flags.Has(http2.FlagDataEndStream) { // the same bit for HEADERS
			return 1
		}
	}
	return 0
}

// spend takes n tokens after refilling for the time passed, and reports
// whether there were enough.
func (w *budget) spend(n int) bool {
	now := time.Now()
	w.tokens = min(h2Burst, w.tokens+now.Sub(w.last).Seconds()*h2Refill)
	w.last = now
	w.tokens -= float64(n)
	return w.tokens >= 0
}
