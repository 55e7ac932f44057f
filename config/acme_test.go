package config

import (
	"reflect"
	"testing"
)

var badACME = []struct{ name, yaml, want string }{
	{"acme without domains or on_demand",
		"listeners:\n  - tls:\n      acme: {email: a@b.org}\n",
		`bad.yaml:3: listeners[0].tls.acme.domains: is required without on_demand: list the names to obtain certificates for`},
	{"acme and certs",
		"listeners:\n  - tls:\n      certs: [{cert: cert.pem, key: key.pem}]\n      acme: {domains: [a.example.org]}\n",
		`bad.yaml:4: listeners[0].tls.acme: give certs or acme, not both`},
	{"acme name not public",
		"listeners:\n  - tls:\n      acme:\n        domains: [localhost, a.b.local, 10.0.0.1]\n",
		"bad.yaml:4: listeners[0].tls.acme.domains[0]: \"localhost\" is not a public name: a CA cannot check it\n" +
			"bad.yaml:4: listeners[0].tls.acme.domains[1]: \"a.b.local\" is not a public name: a CA cannot check it\n" +
			"bad.yaml:4: listeners[0].tls.acme.domains[2]: \"10.0.0.1\" is not a DNS name"},
	{"acme wildcard",
		"listeners:\n  - tls:\n      acme:\n        domains: ['*.example.org']\n",
		`bad.yaml:4: listeners[0].tls.acme.domains[0]: wildcard names need the dns-01 challenge, which is not supported: list the names`},
	{"acme unknown challenge",
		"listeners:\n  - tls:\n      acme:\n        domains: [a.example.org]\n        challenges: [dns-01]\n",
		`bad.yaml:5: listeners[0].tls.acme.challenges[0]: unknown challenge "dns-01": want http-01 or tls-alpn-01`},
	{"acme CA not https",
		"listeners:\n  - tls:\n      acme:\n        domains: [a.example.org]\n        ca: http://ca.example.org/dir\n",
		`bad.yaml:5: listeners[0].tls.acme.ca: "http://ca.example.org/dir" is not an https URL`},
	{"on_demand open to any name",
		"listeners:\n  - tls:\n      acme:\n        on_demand: {}\n",
		`bad.yaml:4: listeners[0].tls.acme.on_demand: needs hosts or ask: otherwise any name pointed at the node would get a certificate`},
	{"on_demand ask not a URL",
		"listeners:\n  - tls:\n      acme:\n        on_demand: {ask: 'ask.example.org/check'}\n",
		`bad.yaml:4: listeners[0].tls.acme.on_demand.ask: "ask.example.org/check" is not an http or https URL`},
	{"acme with client_ca",
		"listeners:\n  - tls:\n      client_ca: ca.pem\n      acme: {domains: [a.example.org]}\n",
		`bad.yaml:3: listeners[0].tls.client_ca: is not supported with acme: the CA's TLS-ALPN-01 check presents no client certificate`},
	{"redirect_https on a TLS listener",
		"listeners:\n  - redirect_https: true\n    tls: {acme: {domains: [a.example.org]}}\n",
		`bad.yaml:2: listeners[0].redirect_https: is for a plain listener: this one has tls`},
}

func TestACMEConfigErrorsNameFileLineAndKey(t *testing.T) {
	expectParseErrors(t, badACME)
}

func TestACMEDefaults(t *testing.T) {
	c, err := Parse("testdata/acme.yaml", []byte("listeners:\n  - addr: ':443'\n    tls:\n      acme:\n        domains: [WWW.Example.org]\n        storage: acme\n        on_demand: {hosts: ['*.Example.org']}\n  - addr: ':80'\n    redirect_https: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Listeners[0].TLS.ACME
	want := &ACME{Domains: []string{"www.example.org"}, CA: DefaultACMECA, Challenges: []string{ChallengeHTTP01, ChallengeTLSALPN01},
		Storage: abs("testdata/acme"), OnDemand: &ACMEOnDemand{Hosts: []string{"*.example.org"}}}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("acme = %+v, want %+v", a, want)
	}
	if !c.Listeners[1].RedirectHTTPS {
		t.Error("redirect_https not decoded")
	}
}
