package s3

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/trace"
)

func TestKeyMapsPrefixAndRefusesWhatIsNoObject(t *testing.T) {
	o, err := New(Config{Name: "t", Bucket: "b", Endpoint: "http://127.0.0.1:9", URLPrefix: "/files/", KeyPrefix: "pkgs/"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/files/a.json":        "pkgs/a.json",
		"/files/dir/a%20b.txt": "pkgs/dir/a b.txt",
		"/files/a%2Fb":         "pkgs/a/b",
		"/files/":              "", // listing off
		"/files/dir/":          "",
		"/other/a.json":        "",
		"/files/../x":          "",
		"/files/%2e%2e/x":      "",
		"/files/%zz":           "",
	} {
		got, ok := o.Key(path)
		if ok != (want != "") || got != want {
			t.Errorf("%s: %q %v, want %q", path, got, ok, want)
		}
	}
	o.cfg.Index = "index.html"
	if got, ok := o.Key("/files/dir/"); !ok || got != "pkgs/dir/index.html" {
		t.Errorf("index document: %q %v", got, ok)
	}
}

func TestEscapeKeyKeepsOnlyUnreservedAndSlash(t *testing.T) {
	if got := escapeKey("a b+c/d~e_f.g-h(é)"); got != "a%20b%2Bc/d~e_f.g-h%28%C3%A9%29" {
		t.Fatalf("escapeKey: %s", got)
	}
}

func TestCredentialErrorsQuoteNoSecret(t *testing.T) {
	file := t.TempDir() + "/credentials"
	const secret = "sekrit-value-never-shown"
	os.WriteFile(file, []byte("[other]\naws_access_key_id = AKID\naws_secret_access_key = "+secret+"\n[default\nbroken = "+secret+"\n"), 0o600)
	_, err := Credentials(context.Background(), SourceFile, file, "default")
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v: want one, without the secret", err)
	}
	p, err := Credentials(context.Background(), SourceFile, file, "other")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := p.Retrieve(context.Background()); err != nil || c.SecretAccessKey != secret {
		t.Fatalf("profile other: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := Credentials(context.Background(), SourceEnv, "", ""); err == nil {
		t.Fatal("env without keys accepted")
	}
}

// recorder is a RoundTripper that keeps the request and answers 200.
type recorder struct{ req *http.Request }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.req = req
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"X-Amz-Request-Id": {"x"}, "Etag": {`"e"`}},
		Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: req}, nil
}

func TestVirtualHostRequestCarriesOnlyWhatSelectsTheObject(t *testing.T) {
	rec := &recorder{}
	o, err := New(Config{Name: "t", Bucket: "assets", Region: "eu-west-1", Endpoint: "https://s3.example", Transport: rec,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	if err != nil {
		t.Fatal(err)
	}
	var req httphead.Request
	req.SetLine([]byte("GET"), []byte("/a/b.css?list-type=2&acl"), []byte("edge.example"), []byte("https"))
	for _, f := range [][2]string{{"Authorization", "Bearer client"}, {"Cookie", "s=1"}, {"Range", "bytes=0-1"}, {"If-None-Match", `"e"`}} {
		req.Header.AddString(f[0], f[1])
	}
	c := &proxy.Ctx{Context: context.Background(), Trace: &trace.Trace{}}
	var resp httphead.Response
	body, err := o.RoundTrip(c, &req, nil, &resp)
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
	hr := rec.req
	if hr.URL.Host != "assets.s3.example" || hr.URL.EscapedPath() != "/a/b.css" || hr.URL.RawQuery != "" {
		t.Fatalf("request to %s", hr.URL)
	}
	if hr.Header.Get("Cookie") != "" || !strings.Contains(hr.Header.Get("Authorization"), "Credential=AKID/") ||
		strings.Contains(hr.Header.Get("Authorization"), "SECRET") || hr.Header.Get("Range") != "bytes=0-1" {
		t.Fatalf("headers sent: %v", hr.Header)
	}
	if !strings.Contains(hr.Header.Get("Authorization"), "SignedHeaders=host;if-none-match;range;x-amz-content-sha256;x-amz-date") {
		t.Fatalf("signed headers: %s", hr.Header.Get("Authorization"))
	}
	if resp.Header.Has("X-Amz-Request-Id") || resp.Header.Get("ETag") != `"e"` {
		t.Fatalf("response fields: ETag %q, x-amz kept %v", resp.Header.Get("ETag"), resp.Header.Has("X-Amz-Request-Id"))
	}
}
