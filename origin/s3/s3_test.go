package s3

import (
	"context"
	"os"
	"strings"
	"testing"
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
