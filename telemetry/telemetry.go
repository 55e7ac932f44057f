// Package telemetry exports a span per request over OTLP with the
// OpenTelemetry SDK: the request's span carries the decisions of its
// per-request trace (route, cache status and reason, TTL source,
// upstream, attempts and retries) as attributes and events, and each
// origin fetch gets a child span whose W3C trace context (traceparent,
// tracestate) is sent to the origin.
//
// An incoming trace context is continued only for clients in the trusted
// networks; from anyone else it is ignored, so a client can neither join
// a trace nor force sampling. Sampling follows a ratio, optionally the
// parent's decision, and can export the spans of failed requests
// whatever the sampler decided.
//
// A nil *Tracer is off: the edge checks for nil and does nothing more,
// so tracing costs nothing per request until it is configured.
package telemetry

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Tracer makes and exports the spans of one App's requests.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	trust  []netip.Prefix
	prop   propagation.TraceContext
	// live holds the context of each request's span by request ID, for
	// the origin fetches a cache runs on a detached copy of the request
	// (a fill that other clients may wait on) to find their parent.
	live sync.Map
}

// Each Ctx keeps its request span (the connection's Ctx) and its open
// origin fetch span (any Ctx that fetches).
var (
	serverKey = proxy.NewKey[*serverSpan]()
	fetchKey  = proxy.NewKey[*fetchSpan]()
)

type serverSpan struct {
	span trace.Span
	id   string // the request ID, the key of live
}

type fetchSpan struct{ span trace.Span }

// New returns a Tracer exporting to cfg.Endpoint, or nil when tracing is
// off.
func New(cfg config.OTel) (*Tracer, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	exp, err := exporter(cfg)
	if err != nil {
		return nil, fmt.Errorf("otel: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))
	var base sdktrace.Sampler = sdktrace.TraceIDRatioBased(cfg.SampleRatio)
	if cfg.ParentBased {
		base = sdktrace.ParentBased(base)
	}
	var proc sdktrace.SpanProcessor = sdktrace.NewBatchSpanProcessor(exp)
	if cfg.SampleErrors {
		base = recordAll{base}
		proc = errorsToo{proc}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(base), sdktrace.WithSpanProcessor(proc))
	return &Tracer{tp: tp, tracer: tp.Tracer("github.com/outpost-edge/outpost"), trust: cfg.TrustFrom}, nil
}

func exporter(cfg config.OTel) (*otlptrace.Exporter, error) {
	ctx := context.Background() // the exporters connect lazily
	headers, err := cfg.Headers()
	if err != nil {
		return nil, fmt.Errorf("otel.headers_env: %w", err)
	}
	tlsConf, err := cfg.TLS()
	if err != nil {
		return nil, fmt.Errorf("otel.ca %s: %w", cfg.CA, err)
	}
	if cfg.Protocol == "http" {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint)}
		if headers != nil {
			opts = append(opts, otlptracehttp.WithHeaders(headers))
		}
		if tlsConf != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsConf))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
	if headers != nil {
		opts = append(opts, otlptracegrpc.WithHeaders(headers))
	}
	switch {
	case cfg.Insecure:
		opts = append(opts, otlptracegrpc.WithInsecure())
	case tlsConf != nil:
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsConf)))
	}
	return otlptracegrpc.New(ctx, opts...)
}

// Shutdown exports what is buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error { return t.tp.Shutdown(ctx) }

// Start opens the request's span, continuing the client's trace context
// when the client is trusted.
func (t *Tracer) Start(c *proxy.Ctx) {
	s, ok := serverKey.Get(c)
	if !ok {
		s = &serverSpan{}
		serverKey.Set(c, s)
	}
	parent := context.Background()
	if t.trusted(c.Peer.Addr()) {
		parent = t.prop.Extract(parent, headerCarrier{&c.Request.Header})
	}
	ctx, span := t.tracer.Start(parent, "HTTP "+string(c.Request.Method),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(c.Trace.Start))
	s.span, s.id = span, c.ID()
	t.live.Store(s.id, ctx)
}

func (t *Tracer) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.trust {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Fetch opens an origin fetch's span, a child of its request's, and
// gives the origin its trace context. A client's own fields never reach
// the origin: a fetch that outlived its request's span gets none.
func (t *Tracer) Fetch(c *proxy.Ctx, out *httphead.Request) {
	out.Header.Del("traceparent")
	out.Header.Del("tracestate")
	parent, ok := t.live.Load(c.ID())
	if !ok {
		return
	}
	ctx, span := t.tracer.Start(parent.(context.Context), "origin fetch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("url.path", string(out.Path))))
	t.prop.Inject(ctx, headerCarrier{&out.Header})
	f, ok := fetchKey.Get(c)
	if !ok {
		f = &fetchSpan{}
		fetchKey.Set(c, f)
	}
	f.span = span
}

// FetchDone ends the origin fetch's span with the origin's answer and,
// for a fetch run apart from its request, the decisions it made
// (server picked, attempts, retries).
func (t *Tracer) FetchDone(c *proxy.Ctx, status int) {
	f, ok := fetchKey.Get(c)
	if !ok || f.span == nil {
		return
	}
	sp := f.span
	f.span = nil
	sp.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("server.address", c.Upstream),
		attribute.Int("outpost.attempts", c.Attempts))
	if s, ok := serverKey.Get(c); !ok || s.span == nil {
		addEvents(sp, c)
	}
	if status >= 500 {
		sp.SetStatus(codes.Error, strconv.Itoa(status))
	}
	sp.End()
}

// End closes the request's span, with its trace's decisions.
func (t *Tracer) End(c *proxy.Ctx, err error) {
	s, ok := serverKey.Get(c)
	if !ok || s.span == nil {
		return
	}
	t.live.Delete(s.id)
	if f, ok := fetchKey.Get(c); ok && f.span != nil { // the origin never answered
		f.span.SetStatus(codes.Error, "no response")
		if err != nil {
			f.span.RecordError(err)
		}
		f.span.End()
		f.span = nil
	}
	sp := s.span
	s.span = nil
	addEvents(sp, c)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", string(c.Request.Method)),
		attribute.String("url.path", string(c.Request.Path)),
		attribute.String("server.address", string(c.Request.Host)),
		attribute.String("client.address", c.Client.Addr().String()),
		attribute.Int("http.response.status_code", c.Status),
		attribute.String("outpost.request_id", c.ID()),
		attribute.Int("outpost.attempts", c.Attempts),
	}
	if c.Route != nil {
		attrs = append(attrs, attribute.String("http.route", c.Route.Name))
	}
	for _, a := range [...]struct{ key, stage string }{
		{"outpost.cache.status", "cache"}, {"outpost.cache.ttl", "cache-ttl"}, {"outpost.retry", "retry-why"},
	} {
		if v := c.Trace.Find(a.stage); v != "" {
			attrs = append(attrs, attribute.String(a.key, v))
		}
	}
	if c.Upstream != "" {
		attrs = append(attrs, attribute.String("outpost.upstream", c.Upstream))
	}
	sp.SetAttributes(attrs...)
	if err != nil {
		sp.RecordError(err)
	}
	if c.Status >= 500 || (err != nil && c.Status == 0) {
		sp.SetStatus(codes.Error, strconv.Itoa(c.Status))
	}
	sp.End()
}

// addEvents adds the decisions of c's trace to a span, one event each.
func addEvents(sp trace.Span, c *proxy.Ctx) {
	for _, e := range c.Trace.Events {
		sp.AddEvent(e.Stage, trace.WithTimestamp(c.Trace.Start.Add(e.At)), trace.WithAttributes(attribute.String("outpost.detail", e.Detail)))
	}
}

// headerCarrier lets the propagator read and write httphead fields.
type headerCarrier struct{ h *httphead.Header }

func (c headerCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c headerCarrier) Keys() []string        { return []string{"traceparent", "tracestate"} }

// recordAll records every span, so that one left out by the sampler can
// still be exported if it fails (errorsToo); only those the sampler
// chose are marked sampled, and so propagated as sampled.
type recordAll struct{ sdktrace.Sampler }

func (r recordAll) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	res := r.Sampler.ShouldSample(p)
	if res.Decision == sdktrace.Drop {
		res.Decision = sdktrace.RecordOnly
	}
	return res
}

func (r recordAll) Description() string { return "RecordAll{" + r.Sampler.Description() + "}" }

// errorsToo passes sampled spans on, and spans the sampler left out only
// when they failed.
type errorsToo struct{ sdktrace.SpanProcessor }

func (e errorsToo) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		if s.Status().Code != codes.Error {
			return
		}
		s = sampled{s}
	}
	e.SpanProcessor.OnEnd(s)
}

// sampled marks a failed span sampled for the exporting processor.
type sampled struct{ sdktrace.ReadOnlySpan }

func (s sampled) SpanContext() trace.SpanContext {
	sc := s.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
}
