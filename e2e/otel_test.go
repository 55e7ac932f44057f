package e2e

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/node"
)

// otlpReceiver collects the spans exported to it, over gRPC or HTTP.
type otlpReceiver struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var msg collectorpb.ExportTraceServiceRequest
	if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	resp, _ := r.Export(req.Context(), &msg)
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *otlpReceiver) all() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

func grpcReceiver(t testing.TB) (*otlpReceiver, string) {
	r := &otlpReceiver{}
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, r)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return r, l.Addr().String()
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return anyValue(kv.Value)
		}
	}
	return ""
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	}
	return v.String()
}

// otelNode runs a node with the given otel settings in front of origin,
// and returns it with a stop function that flushes the spans.
func otelNode(t *testing.T, origin, otelYAML string) (string, func()) {
	t.Helper()
	cfg, err := config.Parse("otel.yaml", []byte(fmt.Sprintf(`
listeners: [{addr: "127.0.0.1:0"}]
admin: {addr: ""}
upstreams:
  origin: {servers: [{addr: %q}], retries: {max: 0}}
routes:
  - name: pages
    upstream: origin
log: {access: "off"}
otel:
%s
`, origin, otelYAML)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, node.Options{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	}
	t.Cleanup(stop)
	return n.Addrs()[0].String(), stop
}

// One miss and one hit over OTLP/gRPC: a server span per request with the
// trace's decisions, a child span for the origin fetch, and the origin
// sees that child's W3C trace context (traceparent, W3C Trace Context
// section 3.2).
func TestOTelSpansPerRequestWithOriginFetchAndTraceparent(t *testing.T) {
	recv, endpoint := grpcReceiver(t)
	var seen sync.Map // path -> traceparent the origin got
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, r.Header.Get("Traceparent"))
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "page")
	}))
	addr, stop := otelNode(t, origin, fmt.Sprintf("  endpoint: %q\n  insecure: true\n  trust_from: [127.0.0.1]", endpoint))
	clientTrace := "4bf92f3577b34da6a3ce929d0e0e4736"
	get(t, "http://"+addr+"/a", "Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	if resp, _ := get(t, "http://"+addr+"/a"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("second request: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
	stop()
	spans := recv.all()
	var servers, fetches []*tracepb.Span
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			servers = append(servers, s)
		case tracepb.Span_SPAN_KIND_CLIENT:
			fetches = append(fetches, s)
		}
	}
	if len(servers) != 2 || len(fetches) != 1 {
		t.Fatalf("%d server spans and %d fetch spans, want 2 and 1: %v", len(servers), len(fetches), spans)
	}
	miss, hit := servers[0], servers[1]
	if attr(miss, "outpost.cache.status") != "miss" || attr(hit, "outpost.cache.status") != "hit" {
		t.Errorf("cache status: %q then %q", attr(miss, "outpost.cache.status"), attr(hit, "outpost.cache.status"))
	}
	for _, s := range servers {
		if attr(s, "http.route") != "pages" || attr(s, "http.response.status_code") != "200" || attr(s, "url.path") != "/a" {
			t.Errorf("span attributes: %v", s.Attributes)
		}
		if len(s.Events) == 0 {
			t.Errorf("span %s has no decision events", s.Name)
		}
	}
	// The trusted client's trace is continued.
	if got := hex.EncodeToString(miss.TraceId); got != clientTrace {
		t.Errorf("trace id %s, want the client's %s", got, clientTrace)
	}
	fetch := fetches[0]
	if string(fetch.ParentSpanId) != string(miss.SpanId) || string(fetch.TraceId) != string(miss.TraceId) {
		t.Errorf("the fetch span is not the request span's child")
	}
	if attr(fetch, "server.address") != origin || attr(fetch, "http.response.status_code") != "200" || attr(fetch, "outpost.attempts") != "1" {
		t.Errorf("fetch span attributes: %v", fetch.Attributes)
	}
	tp, _ := seen.Load("/a")
	want := "00-" + hex.EncodeToString(fetch.TraceId) + "-" + hex.EncodeToString(fetch.SpanId) + "-01"
	if tp != want {
		t.Errorf("origin got traceparent %q, want %q", tp, want)
	}
}

// A client outside trust_from cannot join a trace: its traceparent is
// neither continued nor forwarded.
func TestOTelIgnoresUntrustedTraceContext(t *testing.T) {
	recv, endpoint := grpcReceiver(t)
	var got string
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Traceparent") + " " + r.Header.Get("Tracestate")
	}))
	addr, stop := otelNode(t, origin, fmt.Sprintf("  endpoint: %q\n  insecure: true", endpoint))
	clientTrace := "4bf92f3577b34da6a3ce929d0e0e4736"
	get(t, "http://"+addr+"/x", "Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01", "Tracestate", "evil=1")
	stop()
	if strings.Contains(got, clientTrace) || strings.Contains(got, "evil") {
		t.Errorf("the origin got the client's trace context: %q", got)
	}
	for _, s := range recv.all() {
		if hex.EncodeToString(s.TraceId) == clientTrace {
			t.Errorf("span %s joined the client's trace", s.Name)
		}
	}
}

// Over OTLP/HTTP, with nothing sampled but errors: a 200 exports no span,
// a 502 (origin down) exports its spans.
func TestOTelHTTPExportsErrorsWhenNotSampled(t *testing.T) {
	recv := &otlpReceiver{}
	endpoint := serve(t, recv)
	ok := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			panic(http.ErrAbortHandler)
		}
	}))
	addr, stop := otelNode(t, ok, fmt.Sprintf("  protocol: http\n  endpoint: %q\n  sample_ratio: 0", "http://"+endpoint+"/v1/traces"))
	if resp, _ := get(t, "http://"+addr+"/fine"); resp.StatusCode != 200 {
		t.Fatalf("/fine: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "http://"+addr+"/down"); resp.StatusCode < 500 {
		t.Fatalf("/down: %d", resp.StatusCode)
	}
	stop()
	var paths []string
	for _, s := range recv.all() {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			paths = append(paths, attr(s, "url.path")+" "+attr(s, "http.response.status_code"))
			if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("exported span without error status: %v", s)
			}
		}
	}
	if len(paths) != 1 || !strings.HasPrefix(paths[0], "/down 5") {
		t.Fatalf("exported server spans %v, want only /down's", paths)
	}
}

// BenchmarkHit1KOTel is BenchmarkHit1K with OpenTelemetry on: what a
// span per request costs, exported (sampled) or recorded only in case
// the request fails (not sampled). Off, the hit path stays at 0 allocs.
func BenchmarkHit1KOTel(b *testing.B) {
	for _, ratio := range []string{"1", "0"} {
		b.Run("sample_ratio="+ratio, func(b *testing.B) {
			_, endpoint := grpcReceiver(b)
			e := startEdge(&testing.T{}, oneRoute+fmt.Sprintf("otel: {endpoint: %q, insecure: true, sample_ratio: %s}\n", endpoint, ratio), "{{ORIGIN}}", benchOrigin(b))
			defer e.Shutdown(b.Context())
			c := newRawClient(b, strings.TrimPrefix(e.URL, "http://"), "/obj")
			defer c.conn.Close()
			c.do(b)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if st := c.do(b); st != 200 {
					b.Fatalf("status %d", st)
				}
			}
		})
	}
}

// Both OTLP protocols export to a collector whose certificate only the
// configured CA vouches for, with the API key read from the environment
// in a field of every export (otel.ca, otel.headers_env).
func TestOTelExportsToACollectorWithItsCAAndAPIKey(t *testing.T) {
	t.Setenv("OUTPOST_TEST_OTEL_KEY", "k-123")
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, "collector", "localhost")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	otelYAML := "  protocol: %s\n  endpoint: %q\n  ca: %q\n  headers_env: {x-api-key: OUTPOST_TEST_OTEL_KEY}"

	t.Run("http", func(t *testing.T) {
		recv := &otlpReceiver{}
		var keys sync.Map
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			keys.Store(r.Header.Get("X-Api-Key"), true)
			recv.ServeHTTP(w, r)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.StartTLS()
		defer srv.Close()
		port := srv.Listener.Addr().(*net.TCPAddr).Port
		addr, stop := otelNode(t, origin, fmt.Sprintf(otelYAML, "http", fmt.Sprintf("https://localhost:%d/v1/traces", port), certFile))
		get(t, "http://"+addr+"/page")
		stop()
		if _, ok := keys.Load("k-123"); !ok || len(recv.all()) == 0 {
			t.Fatalf("%d spans; keys seen: %v", len(recv.all()), mapKeys(&keys))
		}
	})

	t.Run("grpc", func(t *testing.T) {
		recv := &otlpReceiver{}
		var keys sync.Map
		srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)),
			grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				md, _ := metadata.FromIncomingContext(ctx)
				for _, k := range md.Get("x-api-key") {
					keys.Store(k, true)
				}
				return h(ctx, req)
			}))
		collectorpb.RegisterTraceServiceServer(srv, recv)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(l)
		defer srv.Stop()
		port := l.Addr().(*net.TCPAddr).Port
		addr, stop := otelNode(t, origin, fmt.Sprintf(otelYAML, "grpc", fmt.Sprintf("localhost:%d", port), certFile))
		get(t, "http://"+addr+"/page")
		stop()
		if _, ok := keys.Load("k-123"); !ok || len(recv.all()) == 0 {
			t.Fatalf("%d spans; keys seen: %v", len(recv.all()), mapKeys(&keys))
		}
	})
}

func mapKeys(m *sync.Map) []any {
	var keys []any
	m.Range(func(k, _ any) bool { keys = append(keys, k); return true })
	return keys
}
