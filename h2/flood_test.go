package h2

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

func TestFrameCostCountsOnlyFramesThatDoNoWork(t *testing.T) {
	cases := []struct {
		name  string
		write func(fr *http2.Framer)
		cost  int
	}{
		{"settings", func(fr *http2.Framer) { fr.WriteSettings() }, 1},
		{"settings ack", func(fr *http2.Framer) { fr.WriteSettingsAck() }, 0},
		{"ping", func(fr *http2.Framer) { fr.WritePing(false, [8]byte{}) }, 1},
		{"ping ack", func(fr *http2.Framer) { fr.WritePing(true, [8]byte{}) }, 0},
		{"rst_stream", func(fr *http2.Framer) { fr.WriteRSTStream(1, http2.ErrCodeCancel) }, 1},
		{"priority", func(fr *http2.Framer) { fr.WritePriority(1, http2.PriorityParam{Weight: 1}) }, 1},
		{"continuation", func(fr *http2.Framer) { fr.WriteContinuation(1, true, []byte("x")) }, 1},
		{"headers", func(fr *http2.Framer) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndHeaders: true})
		}, 0},
		{"empty data", func(fr *http2.Framer) { fr.WriteData(1, false, nil) }, 1},
		{"empty data ending the stream", func(fr *http2.Framer) { fr.WriteData(1, true, nil) }, 0},
		{"data", func(fr *http2.Framer) { fr.WriteData(1, false, make([]byte, 100)) }, 0},
		{"window update", func(fr *http2.Framer) { fr.WriteWindowUpdate(0, 1000) }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.write(http2.NewFramer(&b, nil))
			fh, err := http2.ReadFrameHeader(&b)
			if err != nil {
				t.Fatal(err)
			}
			if got := frameCost(fh); got != tc.cost {
				t.Errorf("cost %d, want %d", got, tc.cost)
			}
		})
	}
}

func TestBudgetRefillsWithTime(t *testing.T) {
	w := &budget{tokens: 0, last: time.Now().Add(-time.Second)}
	if !w.spend(h2Refill) {
		t.Error("a second's refill did not cover a second's worth of frames")
	}
	if w.spend(1) {
		t.Error("the budget went below zero")
	}
	w = &budget{tokens: h2Burst, last: time.Now().Add(-time.Hour)}
	w.spend(0)
	if w.tokens > h2Burst {
		t.Errorf("tokens %v above the burst", w.tokens)
	}
}
