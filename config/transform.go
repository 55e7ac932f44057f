package config

import (
	"fmt"
	"strings"
)

// Compress is on-the-fly compression of a route's responses with br, zstd
// or gzip, whichever the request's Accept-Encoding weighs highest (ties in
// that order). It is done before the cache stores a response, so each
// coding is paid once per object; Vary: Accept-Encoding is added and the
// ETag gets the coding as a suffix ("abc-br", RFC 9110 section 8.8.3).
// Types compressed by their own format (images but SVG, audio, video,
// archives, WOFF) and responses marked no-transform never are.
type Compress struct {
	// Enabled turns compression on. Default: true.
	Enabled bool `yaml:"enabled"`
	// Types are the media types compressed: "text/html", "text/*" (a
	// whole type) or "+json" (a structured syntax suffix). Default:
	// [text/*, application/json, application/javascript, application/xml,
	// image/svg+xml, +json, +xml].
	Types []string `yaml:"types"`
	// MinSize is the smallest body compressed, when the origin gives its
	// length; smaller ones gain less than the coding costs. Default: 1KiB.
	MinSize Size `yaml:"min_size"`
}

func (c *Compress) setDefaults() {
	*c = Compress{Enabled: true, MinSize: 1 << 10, Types: []string{"text/*", "application/json",
		"application/javascript", "application/xml", "image/svg+xml", "+json", "+xml"}}
}

// Rewrite is a streaming find-and-replace on a route's response bodies,
// before compression and the cache (the rewritten body is what is
// stored): a gzip, br or zstd body is decoded first. Memory per response
// is one read plus the longest find. The ETag becomes weak.
type Rewrite struct {
	// Types are the media types rewritten, written as in compress.types.
	// Default: [application/json, +json, text/html].
	Types []string `yaml:"types"`
	// Replace are the pairs applied, leftmost match first (the longest
	// find when several start at one place). Required, at least one.
	Replace []Replacement `yaml:"replace"`
}

func (r *Rewrite) setDefaults() {
	*r = Rewrite{Types: []string{"application/json", "+json", "text/html"}}
}

// Replacement is one find-and-replace pair of a rewrite.
type Replacement struct {
	// Find is the text replaced, 1 to 4096 bytes. Required.
	Find string `yaml:"find"`
	// With is what replaces it. Default: "", removing Find.
	With string `yaml:"with"`
}

// maxFind bounds a rewrite's find text, which is what a rewrite holds back
// between reads.
const maxFind = 4096

// transforms checks a route's compress and rewrite blocks.
func (k *checker) transforms(key string, r *Route) {
	k.mediaTypes(key+".compress.types", r.Compress.Types)
	if r.Compress.MinSize < 0 {
		k.errorf(key+".compress.min_size", "must not be negative")
	}
	rw := r.Rewrite
	if rw == nil {
		return
	}
	if r.Respond != nil {
		k.errorf(key+".rewrite", "applies to upstream responses, not respond")
	}
	k.mediaTypes(key+".rewrite.types", rw.Types)
	if len(rw.Replace) == 0 {
		k.errorf(key+".rewrite.replace", "needs at least one find/with pair")
	}
	for i, p := range rw.Replace {
		if len(p.Find) == 0 || len(p.Find) > maxFind {
			k.errorf(fmt.Sprintf("%s.rewrite.replace[%d].find", key, i), "must be 1 to %d bytes", maxFind)
		}
	}
}

// mediaTypes checks a list of media type patterns.
func (k *checker) mediaTypes(key string, list []string) {
	for i, t := range list {
		major, minor, ok := strings.Cut(t, "/")
		if strings.HasPrefix(t, "+") && len(t) > 1 && isToken(t[1:]) || ok && isToken(major) && (minor == "*" || isToken(minor)) {
			if t != strings.ToLower(t) {
				k.errorf(fmt.Sprintf("%s[%d]", key, i), "%q: write media types in lower case", t)
			}
			continue
		}
		k.errorf(fmt.Sprintf("%s[%d]", key, i), "%q is not a media type: want type/subtype, type/* or +suffix", t)
	}
}
