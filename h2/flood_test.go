package h2

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// frames returns the client preface followed by the frames write makes.
func frames(t testing.TB, write func(fr *http2.Framer)) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	write(http2.NewFramer(&b, nil))
	return b.Bytes()
}

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
			w := &h2Watch{preface: len(http2.ClientPreface)}
			b := frames(t, func(fr *http2.Framer) {
				tc.write(fr)
				fr.WriteData(3, false, []byte("trailing data frame, free"))
			})
			if got := w.scan(b); got != tc.cost {
				t.Errorf("cost %d, want %d", got, tc.cost)
			}
			if w.hn != 0 || w.skip != 0 {
				t.Errorf("scanner left mid-frame: hn=%d skip=%d", w.hn, w.skip)
			}
		})
	}
}

// FuzzScanSplitsAnywhere checks that the cost of a byte stream does not
// depend on how reads split it, and that no input panics the scanner.
func FuzzScanSplitsAnywhere(f *testing.F) {
	f.Add(frames(f, func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WritePing(false, [8]byte{})
		fr.WriteData(1, false, []byte("hello"))
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
	}), uint8(7))
	f.Add([]byte(http2.ClientPreface+"\xff\xff\xff\x06\x00\x00\x00\x00\x00"), uint8(1))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		whole := &h2Watch{preface: len(http2.ClientPreface)}
		want := whole.scan(b)
		split := &h2Watch{preface: len(http2.ClientPreface)}
		got, n := 0, int(step)+1
		for i := 0; i < len(b); i += n {
			got += split.scan(b[i:min(i+n, len(b))])
		}
		if got != want || *split != *whole {
			t.Fatalf("split every %d bytes: cost %d, state %+v; whole: cost %d, state %+v", n, got, *split, want, *whole)
		}
	})
}

func TestFloodingConnectionIsEndedWithEnhanceYourCalm(t *testing.T) {
	s := NewServer(Limits{})
	client, server := net.Pipe()
	defer client.Close()
	w := s.watch(server, nil)
	flood := frames(t, func(fr *http2.Framer) {
		for range h2Burst + 10 {
			fr.WritePing(false, [8]byte{})
		}
	})
	go func() {
		client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		client.Write(flood)
		client.Close()
	}()
	var err error
	for i := 0; i < len(flood) && err == nil; i++ {
		_, err = w.Read(make([]byte, 4096))
	}
	if err != errFlood {
		t.Fatalf("read error %v, want the flood error", err)
	}
	if _, err := w.Read(make([]byte, 1)); err != errFlood {
		t.Errorf("read after the flood: %v", err)
	}
	if s.Floods.Load() != 1 {
		t.Errorf("Floods = %d, want 1", s.Floods.Load())
	}
}

func TestBudgetRefillsWithTime(t *testing.T) {
	w := &h2Watch{tokens: 0, last: time.Now().Add(-time.Second)}
	if !w.spend(h2Refill) {
		t.Error("a second's refill did not cover a second's worth of frames")
	}
	if w.spend(1) {
		t.Error("the budget went below zero")
	}
	w = &h2Watch{tokens: h2Burst, last: time.Now().Add(-time.Hour)}
	w.spend(0)
	if w.tokens > h2Burst {
		t.Errorf("tokens %v above the burst", w.tokens)
	}
}
