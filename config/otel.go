package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// OTel exports a span per request over OTLP (OpenTelemetry), with the
// decisions of the per-request trace as attributes and events and a
// child span per origin fetch. It is off unless Endpoint is set, and then
// costs nothing on requests.
type OTel struct {
	// Endpoint is where spans are sent: host:port for grpc, a URL
	// (http://host:4318/v1/traces) for http. Default: "", off.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http (OTLP over HTTP with protobuf).
	// Default (also when empty): grpc.
	Protocol string `yaml:"protocol"`
	// Insecure sends spans in cleartext (grpc; for http, the URL's scheme
	// decides). Default: false, TLS verified against the system roots.
	Insecure bool `yaml:"insecure"`
	// ServiceName is the service.name resource attribute.
	// Default (also when empty): "outpost".
	ServiceName string `yaml:"service_name"`
	// SampleRatio is the share of requests traced, 0 to 1.
	// Default: 1, every request.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ParentBased follows the sampling decision of an accepted incoming
	// trace context instead of SampleRatio. Default: true.
	ParentBased bool `yaml:"parent_based"`
	// SampleErrors exports the spans of a request answered 5xx, or of an
	// origin fetch that failed, even when sampling left them out.
	// Default: true.
	SampleErrors bool `yaml:"sample_errors"`
	// TrustFrom are the networks of the peers (the TCP or PROXY protocol
	// peer: a load balancer in front, or a client) whose traceparent and
	// tracestate fields (W3C Trace Context) are continued; a single
	// address means a /32 or /128. For anyone else the request starts a
	// new trace, so a client can neither join a trace nor force sampling,
	// and the origin gets only the node's trace context.
	// Default: empty, trust no one.
	TrustFrom []netip.Prefix `yaml:"trust_from"`
	// HeadersEnv are fields sent with every export, each value read at
	// start from the environment variable named (a collector's API key
	// stays out of the file): {authorization: OTEL_AUTH}. The exporter
	// also honours OTEL_EXPORTER_OTLP_HEADERS. Default: none.
	HeadersEnv map[string]string `yaml:"headers_env"`
	// CA is a PEM file of the roots that verify the collector's
	// certificate, instead of the system's. Default: "", the system roots.
	CA string `yaml:"ca"`
}

// Headers returns the export fields of HeadersEnv with their values read
// from the environment; an unset or empty variable is an error.
func (o *OTel) Headers() (map[string]string, error) {
	if len(o.HeadersEnv) == 0 {
		return nil, nil
	}
	h := make(map[string]string, len(o.HeadersEnv))
	for name, env := range o.HeadersEnv {
		if !isToken(name) {
			return nil, fmt.Errorf("%q is not a field name", name)
		}
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" || strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("%s: $%s is unset, empty or holds a line break", name, env)
		}
		h[name] = v
	}
	return h, nil
}

// TLS returns the client TLS settings for the collector: the CA file's
// roots, or nil for the system's.
func (o *OTel) TLS() (*tls.Config, error) {
	if o.CA == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(o.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("the file holds no PEM certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func (o *OTel) setDefaults() {
	*o = OTel{Protocol: "grpc", ServiceName: "outpost", SampleRatio: 1, ParentBased: true, SampleErrors: true}
}

func (k *checker) otel() {
	o := &k.c.OTel
	setZero(&o.Protocol, "grpc")
	setZero(&o.ServiceName, "outpost")
	if o.SampleRatio < 0 || o.SampleRatio > 1 {
		k.errorf("otel.sample_ratio", "%v is not between 0 and 1", o.SampleRatio)
	}
	switch o.Protocol {
	case "grpc":
		if o.Endpoint != "" && strings.Contains(o.Endpoint, "://") {
			k.errorf("otel.endpoint", "%q: grpc takes host:port", o.Endpoint)
		} else if o.Endpoint != "" {
			k.hostPort("otel.endpoint", o.Endpoint, false)
		}
	case "http":
		if u, err := url.Parse(o.Endpoint); o.Endpoint != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			k.errorf("otel.endpoint", "%q: http takes a URL such as http://collector:4318/v1/traces", o.Endpoint)
		}
	default:
		k.errorf("otel.protocol", "unknown protocol %q: want grpc or http", o.Protocol)
	}
	if _, err := o.Headers(); err != nil {
		k.errorf("otel.headers_env", "%v", err)
	}
	k.resolve(&o.CA)
	if o.CA != "" && o.Insecure && o.Protocol == "grpc" {
		k.errorf("otel.ca", "set with insecure: spans would go in cleartext")
	} else if _, err := o.TLS(); err != nil {
		k.errorf("otel.ca", "%v", err)
	}
}
