package guard

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// DefaultPage is the challenge page: plain HTML and an inline script, no
// external resources. The script computes SHA-256 itself instead of calling
// crypto.subtle: browsers only offer crypto.subtle on secure origins (so
// not on plain-HTTP sites), and its promise per hash costs tens of
// microseconds, where this one-block loop costs well under one. It works in
// batches so the page stays responsive, then posts the answer as a form,
// which works without fetch and follows the redirect back. The script and
// style do not change per request (the challenge is read from the form), so
// the page can be served under a strict, hash-based Content-Security-Policy
// (see Challenge.ContentSecurityPolicy).
var DefaultPage = []byte(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex,nofollow">
<title>Checking your browser</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#222}</style>
</head><body>
<h1>Checking your browser</h1>
<p id="status">One moment&hellip;</p>
<noscript><p>This site needs JavaScript to check that you are not a robot. Please enable it and reload.</p></noscript>
<form id="answer" method="POST" action="{{action}}" data-bits="{{bits}}">
<input type="hidden" name="c" value="{{token}}">
<input type="hidden" name="n" id="nonce" value="">
<input type="hidden" name="r" value="{{return}}">
</form>
<script>
(function () {
"use strict";
var form = document.getElementById("answer");
var TOKEN = form.elements.c.value, BITS = +form.getAttribute("data-bits");
var K = new Int32Array([
0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,
0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,
0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,
0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,
0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,
0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,
0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2]);
var W = new Int32Array(64), msg = new Uint8Array(64), i;
for (i = 0; i < TOKEN.length; i++) msg[i] = TOKEN.charCodeAt(i);

// firstWord returns the first 32 bits of SHA-256(msg[0:len]), len <= 55.
function firstWord(len) {
  var i, j, x, y;
  for (i = len; i < 64; i++) msg[i] = 0;
  msg[len] = 0x80;
  for (i = 0; i < 14; i++) {
    j = i * 4;
    W[i] = msg[j] << 24 | msg[j + 1] << 16 | msg[j + 2] << 8 | msg[j + 3];
  }
  W[14] = 0;
  W[15] = len * 8;
  for (i = 16; i < 64; i++) {
    x = W[i - 15]; y = W[i - 2];
    W[i] = (W[i - 16] + ((x >>> 7 | x << 25) ^ (x >>> 18 | x << 14) ^ (x >>> 3)) + W[i - 7] +
      ((y >>> 17 | y << 15) ^ (y >>> 19 | y << 13) ^ (y >>> 10))) | 0;
  }
  var a = 0x6a09e667 | 0, b = 0xbb67ae85 | 0, c = 0x3c6ef372 | 0, d = 0xa54ff53a | 0,
    e = 0x510e527f | 0, f = 0x9b05688c | 0, g = 0x1f83d9ab | 0, h = 0x5be0cd19 | 0, t1, t2;
  for (i = 0; i < 64; i++) {
    t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) +
      ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    t2 = (((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) +
      ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  return (0x6a09e667 + a) | 0;
}

function put(n) {
  var s = String(n), i;
  for (i = 0; i < s.length; i++) msg[TOKEN.length + i] = s.charCodeAt(i);
  return TOKEN.length + s.length;
}

var n = 0;
function work() {
  for (var end = n + 50000; n < end; n++) {
    if ((firstWord(put(n)) >>> (32 - BITS)) === 0) {
      document.getElementById("nonce").value = String(n);
      document.getElementById("status").textContent = "Done, taking you to the page\u2026";
      form.submit();
      return;
    }
  }
  setTimeout(work, 0);
}
work();
})();
</script>
</body></html>
`)

// pagePart is a piece of the page template: literal text, then the value
// of one placeholder (or none after the last piece).
type pagePart struct {
	text []byte
	hole int // index into placeholders, -1 for none
}

var placeholders = [...]string{"{{token}}", "{{bits}}", "{{action}}", "{{return}}"}

const (
	holeToken = iota
	holeBits
	holeAction
	holeReturn
)

// splitPage cuts a template at its placeholders.
func splitPage(tpl []byte) []pagePart {
	var parts []pagePart
	for {
		at, hole := -1, -1
		for h, p := range placeholders {
			if i := bytes.Index(tpl, []byte(p)); i >= 0 && (at < 0 || i < at) {
				at, hole = i, h
			}
		}
		if at < 0 {
			return append(parts, pagePart{text: tpl, hole: -1})
		}
		parts = append(parts, pagePart{text: tpl[:at], hole: hole})
		tpl = tpl[at+len(placeholders[hole]):]
	}
}

// pageCSP returns a Content-Security-Policy that allows exactly the inline
// script and style of a page template and nothing else, or "" when they
// hold placeholders (their hash would change per request).
func pageCSP(tpl []byte) string {
	csp := "default-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	for _, el := range [...]struct{ tag, directive string }{{"script", "script-src"}, {"style", "style-src"}} {
		_, rest, ok := bytes.Cut(tpl, []byte("<"+el.tag+">"))
		if !ok {
			continue
		}
		body, _, ok := bytes.Cut(rest, []byte("</"+el.tag+">"))
		if !ok || bytes.Contains(body, []byte("{{")) {
			return ""
		}
		sum := sha256.Sum256(body)
		csp += "; " + el.directive + " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return csp
}

// ContentSecurityPolicy returns the Content-Security-Policy field value to
// serve the challenge page with: only its own inline script and style, form
// posts to this site, no framing. It is "" for a custom Page whose script
// or style holds placeholders.
func (c *Challenge) ContentSecurityPolicy() string { return c.csp }

// AppendPage appends the challenge page for the client, with a fresh
// challenge; returnTo is the request-target to go back to once solved (only
// a local path is kept, anything else becomes "/").
func (c *Challenge) AppendPage(dst []byte, ip netip.Addr, ua, returnTo []byte, now time.Time) []byte {
	var tok [64]byte
	token := c.NewToken(tok[:0], ip, ua, now)
	for _, p := range c.page {
		dst = append(dst, p.text...)
		switch p.hole {
		case holeToken:
			dst = append(dst, token...)
		case holeBits:
			dst = strconv.AppendInt(dst, int64(c.Difficulty), 10)
		case holeAction:
			dst = appendHTMLEscaped(dst, c.VerifyPath)
		case holeReturn:
			dst = appendHTMLEscaped(dst, string(localPath(returnTo)))
		}
	}
	return dst
}

// localPath returns target if it is a path on this site, else "/": the
// verification endpoint must not become an open redirect.
func localPath(target []byte) []byte {
	if len(target) == 0 || target[0] != '/' || len(target) > 1 && (target[1] == '/' || target[1] == '\\') {
		return []byte("/")
	}
	for _, c := range target {
		if c < 0x21 || c == 0x7f {
			return []byte("/")
		}
	}
	return target
}

func appendHTMLEscaped(dst []byte, s string) []byte {
	return append(dst, html.EscapeString(s)...)
}

// ClientIPFunc returns the client address of a request.
type ClientIPFunc func(*http.Request) netip.Addr

// RemoteIP is the address of r.RemoteAddr, for clients that connect
// directly.
func RemoteIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

// maxAnswerBytes bounds the body of a posted answer.
const maxAnswerBytes = 4 << 10

// Answer checks an answer posted to VerifyPath: an
// application/x-www-form-urlencoded body with the fields c (challenge), n
// (nonce) and r (where to return). It returns the Set-Cookie value that
// carries the pass (secure: over HTTPS) and the local path to redirect to
// with 303. Engines that do not use net/http call it directly.
func (c *Challenge) Answer(body []byte, ip netip.Addr, ua []byte, now time.Time, secure bool) (setCookie []byte, location string, err error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := c.Verify([]byte(form.Get("c")), []byte(form.Get("n")), ip, ua, now); err != nil {
		return nil, "", err
	}
	return c.AppendSetCookie(nil, ip, ua, now, secure), string(localPath([]byte(form.Get("r")))), nil
}

// ServeHTTP is the verification endpoint (VerifyPath) over net/http: on a
// correct answer it sets the pass cookie and redirects (303) to the page
// the client first asked for. A wrong, forged or expired answer gets a 403;
// a request that is not a POST, a 405.
func (c *Challenge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAnswerBytes))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	cookie, location, err := c.Answer(body, c.ClientIP(r), []byte(r.UserAgent()), time.Now(), r.TLS != nil)
	if err != nil {
		http.Error(w, "challenge failed", http.StatusForbidden)
		return
	}
	w.Header().Add("Set-Cookie", string(cookie))
	http.Redirect(w, r, location, http.StatusSeeOther)
}

// Middleware puts the challenge in front of next for net/http servers:
// requests to VerifyPath go to ServeHTTP, requests with a valid pass go to
// next, and every other request gets the challenge page (403). The engine
// does the same with its own request type; this serves library users and
// tests.
func (c *Challenge) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == c.VerifyPath {
			c.ServeHTTP(w, r)
			return
		}
		ip, ua, now := c.ClientIP(r), []byte(r.UserAgent()), time.Now()
		if pass, err := r.Cookie(c.CookieName); err == nil && c.CheckPass([]byte(pass.Value), ip, ua, now) == nil {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", PageContentType)
		h.Set("Cache-Control", "no-store")
		if csp := c.ContentSecurityPolicy(); csp != "" {
			h.Set("Content-Security-Policy", csp)
		}
		w.WriteHeader(http.StatusForbidden)
		w.Write(c.AppendPage(nil, ip, ua, []byte(r.URL.RequestURI()), now))
	})
}
