package cache

import (
	"context"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/trace"
)

// TestRFC9111Section4_1VaryNormalForms lists the secondary key part of
// request fields: each group of lines selects one variant, and the groups
// are different variants.
func TestRFC9111Section4_1VaryNormalForms(t *testing.T) {
	tests := []struct {
		field  string
		normAE bool
		groups [][][]string // groups of requests, each request a list of field lines
	}{
		{"Accept-Encoding", false, [][][]string{
			{{"gzip, br"}, {"br,gzip"}, {"BR , GZip"}, {"br", "gzip"}, {"gzip;q=1, br"}, {"br;Q=1.000,gzip"}},
			{{"gzip;q=0.5, br"}, {"br, gzip ; q=0.50"}},
			{{"gzip"}},
			{{""}},
			{nil}, // no Accept-Encoding at all
		}},
		{"Accept-Encoding", true, [][][]string{
			{{"gzip, br"}, {"br,gzip"}, {"br;q=0.1, identity"}, {"*"}},
			{{"gzip"}, {"x-gzip, deflate"}, {"br;q=0, gzip"}},
		}},
		{"Accept-Language", false, [][][]string{
			{{"en-US, fr;q=0.5"}, {"fr;q=0.50,en-us"}, {"en-US", "fr;q=0.5"}, {"EN-us;q=1, FR;q=0.500"}},
			{{"en-US, fr;q=.5x"}}, // not a weight: kept as sent
			{{"fr, en-US"}},
			{{"en-US"}},
		}},
		{"Accept", false, [][][]string{
			{{`text/HTML;Level=1, application/json;q=0.9`}, {`application/json; q=0.9 ,text/html; level=1`}},
			{{`text/html;level="a,b"`}, {`text/html ; level="a,b"`}},
			{{`text/html;level="A,B"`}},
		}},
		{"Cookie", false, [][][]string{
			{{"a=1; b=2"}, {"a=1", "b=2"}, {"a=1;b=2 "}},
			{{"b=2; a=1"}},
		}},
		{"X-Custom", false, [][][]string{
			{{"  v1 "}, {"v1"}},
			{{"V1"}},
			{{"v1", "v2"}, {"v1,v2"}},
		}},
	}
	for _, tt := range tests {
		keyOf := func(lines []string) string {
			var h httphead.Header
			for _, l := range lines {
				h.AddString(tt.field, l)
			}
			return string(appendVaried(nil, &h, []byte(tt.field), tt.normAE))
		}
		seen := map[string]int{}
		for gi, group := range tt.groups {
			first := keyOf(group[0])
			if other, ok := seen[first]; ok {
				t.Errorf("%s: group %d has the key of group %d: %q", tt.field, gi, other, first)
			}
			seen[first] = gi
			for _, req := range group[1:] {
				if k := keyOf(req); k != first {
					t.Errorf("%s (normAE %v): %q keys as %q, want %q (as %q)", tt.field, tt.normAE, req, k, first, group[0])
				}
			}
		}
	}
}

// TestRFC9111Section4_1EquivalentAcceptValuesShareAVariant: requests whose
// varied fields differ only in order, case or whitespace that the field's
// syntax makes meaningless are served one stored variant.
func TestRFC9111Section4_1EquivalentAcceptValuesShareAVariant(t *testing.T) {
	e := newEnv(t)
	e.pol.KeepAcceptEncoding = true
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding, Accept-Language"}, body: "b"})
	e.get(o, "/v", "Accept-Encoding: gzip, br", "Accept-Language: en-GB, en;q=0.8")
	e.waitFills()
	for _, h := range [][]string{
		{"Accept-Encoding: br,gzip", "Accept-Language: en;q=0.80,EN-gb"},
		{"Accept-Encoding: br", "Accept-Encoding: GZIP", "Accept-Language: en-gb", "Accept-Language: en ; q=0.8"},
	} {
		if r := e.get(o, "/v", h...); r.code != StatusHit {
			t.Errorf("%q: %v, want a hit", h, r.code)
		}
	}
	if r := e.get(o, "/v", "Accept-Encoding: gzip, br", "Accept-Language: en, en-GB;q=0.8"); r.code == StatusHit {
		t.Errorf("another language preference was served the stored variant")
	}
	if n := o.count.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2", n)
	}
}

func TestForEachMemberKeepsQuotedSeparators(t *testing.T) {
	var got []string
	forEachMember([]byte(` a , "b,\"c" ,, d;e="f\`), ',', func(m []byte) { got = append(got, string(m)) })
	if want := []string{"a", `"b,\"c"`, `d;e="f\`}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestVaryAcceptLanguageHitDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	_, _, _, serve := hitSetup(t, "Vary: Accept-Language, Accept-Encoding")
	n := testing.AllocsPerRun(1000, func() {
		rep := serve()
		if rep.Status != StatusHit {
			t.Fatalf("not a hit: %v", rep.Status)
		}
		rep.Close()
	})
	if n != 0 {
		t.Errorf("a hit on a variant allocates %v times", n)
	}
}

func TestTraceShowsTheNormalisedVariant(t *testing.T) {
	e := newEnv(t)
	tr := &trace.Trace{}
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept-Language, Accept-Encoding"}, body: "b"})
	rep, err := e.c.Serve(e.originOf(context.Background(), o.fetch),
		request("GET", "/t", "Accept-Language: FR, en;q=1.0", "Accept-Encoding: gzip"), e.pol, tr)
	if err != nil {
		t.Fatal(err)
	}
	readReply(rep)
	if got, want := tr.Find("cache-variant"), "Accept-Language=fr,en accept-encoding=gzip"; got != want {
		t.Errorf("cache-variant = %q, want %q", got, want)
	}
}
