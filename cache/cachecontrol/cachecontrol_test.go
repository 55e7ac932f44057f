package cachecontrol

import (
	"strings"
	"testing"
)

// want describes the expected directives; zero numeric fields mean Unset
// unless listed in set.
type want struct {
	flags                     Flag
	maxAge, sMaxAge           int64
	maxStale, minFresh        int64
	swr, sie                  int64
	noCacheFields, privFields string
}

func (w want) directives() Directives {
	d := Directives{Flags: w.flags, MaxAge: w.maxAge, SMaxAge: w.sMaxAge, MaxStale: w.maxStale,
		MinFresh: w.minFresh, StaleWhileRevalidate: w.swr, StaleIfError: w.sie}
	return d
}

// u is shorthand for Unset in the table.
const u = Unset

var parseTests = []struct {
	name string
	in   string
	want want
}{
	{"empty", "", want{0, u, u, u, u, u, u, "", ""}},
	{"max-age", "max-age=60", want{0, 60, u, u, u, u, u, "", ""}},
	{"names are case-insensitive", "Max-Age=60, NO-STORE", want{NoStore, 60, u, u, u, u, u, "", ""}},
	{"quoted number accepted", `max-age="60"`, want{0, 60, u, u, u, u, u, "", ""}},
	{"s-maxage and public", "public, s-maxage=300, max-age=10", want{Public, 10, 300, u, u, u, u, "", ""}},
	{"duplicate max-age keeps the smallest", "max-age=100, max-age=5, max-age=50", want{0, 5, u, u, u, u, u, "", ""}},
	{"invalid max-age is stale", "max-age=abc", want{InvalidMaxAge, 0, u, u, u, u, u, "", ""}},
	{"negative max-age is stale", "max-age=-1", want{InvalidMaxAge, 0, u, u, u, u, u, "", ""}},
	{"empty max-age is stale", "max-age=", want{InvalidMaxAge, 0, u, u, u, u, u, "", ""}},
	{"max-age without value is stale", "max-age", want{InvalidMaxAge, 0, u, u, u, u, u, "", ""}},
	{"fractional max-age is stale", "max-age=1.5", want{InvalidMaxAge, 0, u, u, u, u, u, "", ""}},
	{"overflow saturates", "max-age=99999999999999999999999999", want{0, MaxDelta, u, u, u, u, u, "", ""}},
	{"2^31 exactly", "max-age=2147483648", want{0, MaxDelta, u, u, u, u, u, "", ""}},
	{"no-cache unqualified", "no-cache", want{NoCache, u, u, u, u, u, u, "", ""}},
	{"no-cache with fields", `no-cache="Set-Cookie, X-Foo"`, want{NoCache | NoCacheFields, u, u, u, u, u, u, "Set-Cookie, X-Foo", ""}},
	{"unqualified no-cache wins over fields", `no-cache="a", no-cache`, want{NoCache, u, u, u, u, u, u, "", ""}},
	{"fields after unqualified no-cache ignored", `no-cache, no-cache="a"`, want{NoCache, u, u, u, u, u, u, "", ""}},
	{"private with fields", `private="Authorization"`, want{Private | PrivateFields, u, u, u, u, u, u, "", "Authorization"}},
	{"private token field", `private=X-Foo`, want{Private | PrivateFields, u, u, u, u, u, u, "", "X-Foo"}},
	{"all flags", "must-revalidate, proxy-revalidate, must-understand, immutable, no-transform, only-if-cached",
		want{MustRevalidate | ProxyRevalidate | MustUnderstand | Immutable | NoTransform | OnlyIfCached, u, u, u, u, u, u, "", ""}},
	{"stale extensions", "stale-while-revalidate=30, stale-if-error=600", want{0, u, u, u, u, 30, 600, "", ""}},
	{"invalid swr ignored", "stale-while-revalidate=x", want{0, u, u, u, u, u, u, "", ""}},
	{"max-stale any", "max-stale", want{MaxStaleAny, u, u, u, u, u, u, "", ""}},
	{"max-stale value", "max-stale=10", want{0, u, u, 10, u, u, u, "", ""}},
	{"invalid max-stale ignored", "max-stale=z", want{0, u, u, u, u, u, u, "", ""}},
	{"min-fresh keeps the largest", "min-fresh=5, min-fresh=20", want{0, u, u, u, 20, u, u, "", ""}},
	{"garbage between members", ",,, ;;= =, max-age=3 junk, \"q\", no-store", want{NoStore, 3, u, u, u, u, u, "", ""}},
	{"unknown directives skipped", `foo, bar="x,y", max-age=7`, want{0, 7, u, u, u, u, u, "", ""}},
	{"unterminated quote", `max-age=5, no-cache="abc`, want{NoCache | NoCacheFields, 5, u, u, u, u, u, "abc", ""}},
	{"spaces around equals", "max-age = 9", want{0, 9, u, u, u, u, u, "", ""}},
	{"surrogate target skipped", "max-age=60;edge1, no-store;edge2", want{NoStore, 60, u, u, u, u, u, "", ""}},
	{"very long name ignored", strings.Repeat("x", 100) + "=1, max-age=2", want{0, 2, u, u, u, u, u, "", ""}},
}

func TestParseTable(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse([]byte(tt.in))
			check(t, got, tt.want)
		})
	}
}

func check(t *testing.T, got Directives, w want) {
	t.Helper()
	nc, pf := string(got.NoCacheFields), string(got.PrivateFields)
	got.NoCacheFields, got.PrivateFields = nil, nil
	if wd := w.directives(); got.Flags != wd.Flags || got.MaxAge != wd.MaxAge || got.SMaxAge != wd.SMaxAge ||
		got.MaxStale != wd.MaxStale || got.MinFresh != wd.MinFresh ||
		got.StaleWhileRevalidate != wd.StaleWhileRevalidate || got.StaleIfError != wd.StaleIfError {
		t.Errorf("got %+v\nwant %+v", got, w.directives())
	}
	if nc != w.noCacheFields || pf != w.privFields {
		t.Errorf("fields: got %q %q, want %q %q", nc, pf, w.noCacheFields, w.privFields)
	}
}

func TestParseSurrogate(t *testing.T) {
	d := ParseSurrogate([]byte(`content="ESI/1.0", max-age=60+30;edge1, no-store;other`))
	check(t, d, want{NoStore, 60, u, u, u, u, u, "", ""})
}

func TestAddMergesLines(t *testing.T) {
	d := Parse([]byte("max-age=60"))
	d.Add([]byte("max-age=30, private"))
	check(t, d, want{Private, 30, u, u, u, u, u, "", ""})
}

var targetedTests = []struct {
	name string
	in   string
	want want
	ok   bool
}{
	{"dictionary", "max-age=60, no-transform", want{NoTransform, 60, u, u, u, u, u, "", ""}, true},
	{"boolean true", "no-store=?1", want{NoStore, u, u, u, u, u, u, "", ""}, true},
	{"boolean false", "no-store=?0, max-age=5", want{0, 5, u, u, u, u, u, "", ""}, true},
	{"parameters ignored", "max-age=60;a=1;b, public;x", want{Public, 60, u, u, u, u, u, "", ""}, true},
	{"string field names", `private="set-cookie"`, want{Private | PrivateFields, u, u, u, u, u, u, "", "set-cookie"}, true},
	{"negative integer is stale", "max-age=-5", want{InvalidMaxAge, 0, u, u, u, u, u, "", ""}, true},
	{"empty is ignored", "", want{0, u, u, u, u, u, u, "", ""}, false},
	{"unterminated string breaks", `max-age=5, private="x`, want{Private | PrivateFields, 5, u, u, u, u, u, "", "x"}, false},
	{"junk after value breaks", "max-age=5 6", want{0, 5, u, u, u, u, u, "", ""}, false},
}

func TestParseTargetedTable(t *testing.T) {
	for _, tt := range targetedTests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseTargeted([]byte(tt.in))
			if ok != tt.ok {
				t.Errorf("ok = %v, want %v", ok, tt.ok)
			}
			check(t, got, tt.want)
		})
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	in := []byte(`public, max-age=60, s-maxage=3600, no-cache="Set-Cookie", stale-while-revalidate=30, stale-if-error=86400, immutable`)
	n := testing.AllocsPerRun(100, func() {
		d := Parse(in)
		_, _ = ParseTargeted(in)
		if d.MaxAge != 60 {
			t.Fatal("bad parse")
		}
	})
	if n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	for _, tt := range targetedTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b := []byte(in)
		for _, d := range []Directives{Parse(b), ParseSurrogate(b), func() Directives { d, _ := ParseTargeted(b); return d }()} {
			for _, n := range []int64{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleWhileRevalidate, d.StaleIfError} {
				if n < Unset || n > MaxDelta {
					t.Fatalf("number out of range: %d in %+v", n, d)
				}
			}
			for _, sub := range [][]byte{d.NoCacheFields, d.PrivateFields} {
				if len(sub) > 0 && !strings.Contains(in, string(sub)) {
					t.Fatalf("field names %q not a part of the input", sub)
				}
			}
			if d.Has(NoCacheFields) && !d.Has(NoCache) {
				t.Fatalf("NoCacheFields without NoCache: %+v", d)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	in := []byte(`public, max-age=60, s-maxage=3600, stale-while-revalidate=30, stale-if-error=86400`)
	b.ReportAllocs()
	for b.Loop() {
		_ = Parse(in)
	}
}
