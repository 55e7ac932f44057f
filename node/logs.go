package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/outpost-edge/outpost/accesslog"
	"github.com/outpost-edge/outpost/config"
)

// procLog is the process log a node builds when Options.Log is unset:
// log.format and log.level of the config, changed in place by a reload
// (every component holds the same *slog.Logger).
type procLog struct {
	level slog.LevelVar
	text  atomic.Bool
}

func newProcLog(w io.Writer, c config.Log) (*procLog, *slog.Logger) {
	p := &procLog{}
	p.apply(c)
	opts := &slog.HandlerOptions{Level: &p.level}
	h := formatHandler{text: &p.text, json: slog.NewJSONHandler(w, opts), txt: slog.NewTextHandler(w, opts)}
	return p, slog.New(h)
}

// apply takes a config's log.level and log.format.
func (p *procLog) apply(c config.Log) {
	p.level.Set(levelOf(c.Level))
	p.text.Store(c.Format == "text")
}

func levelOf(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

// formatHandler writes each record as JSON or as text, whichever the
// shared switch says at the time. Both handlers share one level.
type formatHandler struct {
	text      *atomic.Bool
	json, txt slog.Handler
}

func (h formatHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.json.Enabled(ctx, l)
}

func (h formatHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.text.Load() {
		return h.txt.Handle(ctx, r)
	}
	return h.json.Handle(ctx, r)
}

func (h formatHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return formatHandler{h.text, h.json.WithAttrs(as), h.txt.WithAttrs(as)}
}

func (h formatHandler) WithGroup(name string) slog.Handler {
	return formatHandler{h.text, h.json.WithGroup(name), h.txt.WithGroup(name)}
}

// accessLog is the access log the node opens for log.access. The node,
// not edge.Shared, owns it so that a reload can reopen it: the new one is
// open before the App that writes to it is built, and the old one is
// closed once the requests still running on the old App are done.
type accessLog struct {
	l *accesslog.Logger // nil: off
	f *os.File          // nil: stdout, stderr or off
}

func openAccessLog(where string) (accessLog, error) {
	switch where {
	case "off", "":
		return accessLog{}, nil
	case "stdout":
		return accessLog{l: accesslog.New(os.Stdout, 0)}, nil
	case "stderr":
		return accessLog{l: accesslog.New(os.Stderr, 0)}, nil
	}
	f, err := os.OpenFile(where, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return accessLog{}, fmt.Errorf("access log: %w", err)
	}
	return accessLog{l: accesslog.New(f, 0), f: f}, nil
}

// close flushes the log and closes its file; it may be called again.
func (a accessLog) close() {
	if a.l != nil {
		a.l.Close()
	}
	if a.f != nil {
		a.f.Close()
	}
}
