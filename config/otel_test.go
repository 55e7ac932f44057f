package config

import "testing"

var badOTel = []struct{ name, yaml, want string }{
	{"otel unknown protocol",
		"otel:\n  endpoint: 127.0.0.1:4317\n  protocol: zipkin\n",
		`bad.yaml:3: otel.protocol: unknown protocol "zipkin": want grpc or http`},
	{"otel grpc endpoint is a URL",
		"otel:\n  endpoint: http://127.0.0.1:4317\n",
		`bad.yaml:2: otel.endpoint: "http://127.0.0.1:4317": grpc takes host:port`},
	{"otel http endpoint not a URL",
		"otel:\n  protocol: http\n  endpoint: 127.0.0.1:4318\n",
		`bad.yaml:3: otel.endpoint: "127.0.0.1:4318": http takes a URL such as http://collector:4318/v1/traces`},
	{"otel sample ratio above 1",
		"otel:\n  endpoint: 127.0.0.1:4317\n  sample_ratio: 1.5\n",
		`bad.yaml:3: otel.sample_ratio: 1.5 is not between 0 and 1`},
}

func TestOTelConfigErrorsNameFileLineAndKey(t *testing.T) {
	t.Setenv("OUTPOST_TEST_OTEL_KEY", "")
	expectParseErrors(t, append(badOTel, []struct{ name, yaml, want string }{
		{"otel header from an unset variable",
			"otel:\n  endpoint: 127.0.0.1:4317\n  headers_env: {x-api-key: OUTPOST_TEST_OTEL_KEY}\n",
			`bad.yaml:3: otel.headers_env: x-api-key: $OUTPOST_TEST_OTEL_KEY is unset, empty or holds a line break`},
		{"otel header name not a token",
			"otel:\n  endpoint: 127.0.0.1:4317\n  headers_env: {\"x api\": HOME}\n",
			`bad.yaml:3: otel.headers_env: "x api" is not a field name`},
		{"otel CA not PEM",
			"otel:\n  endpoint: 127.0.0.1:4317\n  ca: full.yaml\n",
			`bad.yaml:3: otel.ca: the file holds no PEM certificate`},
		{"otel CA with insecure",
			"otel:\n  endpoint: 127.0.0.1:4317\n  insecure: true\n  ca: full.yaml\n",
			`bad.yaml:4: otel.ca: set with insecure: spans would go in cleartext`},
	}...))
}

func TestOTelIsOffByDefault(t *testing.T) {
	c, err := Parse("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.OTel; o.Endpoint != "" || o.Protocol != "grpc" || o.SampleRatio != 1 || !o.ParentBased || !o.SampleErrors || len(o.TrustFrom) != 0 {
		t.Errorf("otel defaults: %+v", o)
	}
}
