package demo

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzServeHTTP checks that no path, method, Accept header or body makes the
// index panic or answer with a server error.
func FuzzServeHTTP(f *testing.F) {
	for _, tt := range pageTests {
		f.Add("GET", tt.path, "", "")
	}
	for _, tt := range uploadErrorTests {
		f.Add(tt.method, tt.path, "", "x")
	}
	for _, tt := range negotiationTests {
		f.Add("GET", "/simple/flask/", tt.accept, "")
	}
	f.Add("POST", "/_upload/new/1.0", "", "data")
	f.Fuzz(func(t *testing.T, method, path, accept, body string) {
		ix := New() // fresh, so uploads never fill it
		if !validMethod(method) {
			return
		}
		req := httptest.NewRequest("GET", "/", strings.NewReader(body))
		req.Method = method
		req.URL = &url.URL{Path: path}
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		ix.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Errorf("%s %q: status %d", method, path, rec.Code)
		}
	})
}

// validMethod keeps to methods a server could receive: a short token.
func validMethod(m string) bool {
	return m != "" && len(m) < 16 && strings.IndexFunc(m, func(r rune) bool { return r <= ' ' || r >= 0x7f }) < 0
}
