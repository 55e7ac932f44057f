package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A WebSocket that carries traffic stays open; once no byte moves either
// way for timeouts.tunnel_idle the edge closes both sides.
func TestAnIdleWebSocketIsClosedOnBothSides(t *testing.T) {
	originDone := make(chan time.Time, 1)
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background()) // no deadline of its own
			if err != nil {
				originDone <- time.Now()
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	}))
	const idle = 400 * time.Millisecond
	e := startEdge(t, oneRoute+"timeouts: {tunnel_idle: 400ms}\n", "{{ORIGIN}}", origin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	// Busy for three times the limit: one message every quarter of it.
	for range 12 {
		if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatalf("a busy tunnel was closed: %v", err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatalf("a busy tunnel was closed: %v", err)
		}
		time.Sleep(idle / 4)
	}
	quiet := time.Now()
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("the idle tunnel was not closed to the client (read: %v)", err)
	}
	// The tunnel went quiet at the last echo, a sleep of idle/4 before
	// quiet was taken: the close may come idle-idle/4 after quiet, a
	// little earlier on a loaded machine.
	if took := time.Since(quiet); took < idle/2 || took > idle+2*time.Second {
		t.Errorf("the client's side closed after %v idle, limit %v", took, idle)
	}
	select {
	case at := <-originDone:
		if at.Sub(quiet) > idle+2*time.Second {
			t.Errorf("the origin's side closed after %v idle", at.Sub(quiet))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the idle tunnel was not closed to the origin")
	}
}
