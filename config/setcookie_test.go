package config

import "testing"

func TestCacheSetCookieDefaultsToPassAndTakesThreeValues(t *testing.T) {
	c, err := Parse("sc.yaml", []byte("routes:\n  - {match: {path_prefix: /a}, respond: {}}\n  - respond: {}\n    cache: {set_cookie: strip}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{c.Routes[0].Cache.SetCookie, c.Routes[1].Cache.SetCookie}; got[0] != "pass" || got[1] != "strip" {
		t.Errorf("set_cookie = %q, want pass (default) and strip", got)
	}
	expectParseErrors(t, []struct{ name, yaml, want string }{
		{"unknown set_cookie", "routes:\n  - respond: {}\n    cache:\n      set_cookie: strp\n",
			`bad.yaml:4: routes[0].cache.set_cookie: unknown value "strp": want pass, strip, store (did you mean "strip"?)`},
	})
}
