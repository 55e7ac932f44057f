package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// ACME obtains and renews a listener's certificates automatically from an
// ACME certificate authority (RFC 8555), such as Let's Encrypt.
type ACME struct {
	// Domains are the names whose certificates are obtained when the node
	// starts and renewed in the background before they expire.
	// Default: none; at least one of Domains and OnDemand is required.
	Domains []string `yaml:"domains"`
	// Email is the contact address given to the CA for expiry and
	// revocation notices. Default: "", no contact.
	Email string `yaml:"email"`
	// CA is the ACME directory URL of the certificate authority; using it
	// means agreeing to its terms of service.
	// Default: "https://acme-v02.api.letsencrypt.org/directory" (Let's Encrypt).
	CA string `yaml:"ca"`
	// CARoots is a PEM file of root certificates trusted for the CA's own
	// HTTPS, for a private CA. Default: "", the system roots.
	CARoots string `yaml:"ca_roots"`
	// Challenges are the challenge types offered to the CA: http-01
	// (answered on port 80, by a listener with redirect_https or else by
	// a temporary one) and tls-alpn-01 (answered on this listener).
	// Default: [http-01, tls-alpn-01].
	Challenges []string `yaml:"challenges"`
	// Storage is the directory holding the ACME account, certificates and
	// private keys (mode 0700, files 0600), relative to the config file;
	// nodes that share it share certificates and solve each other's
	// challenges. Default: "", the directory acme in the node's state
	// directory ($XDG_STATE_HOME/outpost, or $STATE_DIRECTORY under systemd).
	Storage string `yaml:"storage"`
	// OnDemand, when set, obtains a certificate at the first handshake
	// for a name not in Domains, if the name is allowed. Default: nil,
	// only Domains get certificates.
	OnDemand *ACMEOnDemand `yaml:"on_demand"`
}

// ACMEOnDemand says which names may get a certificate at their first
// handshake. Without such a check, anyone pointing a name at the node
// could make it request certificates, and use up the CA's rate limits.
type ACMEOnDemand struct {
	// Hosts are the names allowed; "*.example.org" allows any name one
	// label under example.org. Default: none.
	Hosts []string `yaml:"hosts"`
	// Ask is a URL asked before a certificate is requested for a name not
	// in Hosts: GET URL?domain=NAME, and a 2xx answer allows it.
	// Default: "", none. At least one of Hosts and Ask is required.
	Ask string `yaml:"ask"`
}

func (a *ACME) setDefaults() {
	a.CA = DefaultACMECA
	a.Challenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}
}

// Challenge types of ACME.Challenges.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// DefaultACMECA is the directory of ACME.CA when none is given.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

func (k *checker) provisionACME(a *ACME) {
	setZero(&a.CA, DefaultACMECA)
	if a.Challenges == nil {
		a.Challenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}
	}
	for i, d := range a.Domains {
		a.Domains[i] = strings.ToLower(d)
	}
	if a.OnDemand != nil {
		for i, h := range a.OnDemand.Hosts {
			a.OnDemand.Hosts[i] = strings.ToLower(h)
		}
	}
	k.resolve(&a.CARoots)
	k.resolve(&a.Storage)
}

func (k *checker) acme(key string, a *ACME) {
	if len(a.Domains) == 0 && a.OnDemand == nil {
		k.errorf(key+".domains", "is required without on_demand: list the names to obtain certificates for")
	}
	for i, d := range a.Domains {
		k.acmeName(fmt.Sprintf("%s.domains[%d]", key, i), d)
	}
	if u, err := url.Parse(a.CA); err != nil || u.Scheme != "https" || u.Host == "" {
		k.errorf(key+".ca", "%q is not an https URL", a.CA)
	}
	k.file(key+".ca_roots", a.CARoots, false)
	if len(a.Challenges) == 0 {
		k.errorf(key+".challenges", "at least one challenge type is required")
	}
	for i, c := range a.Challenges {
		if c != ChallengeHTTP01 && c != ChallengeTLSALPN01 {
			k.errorf(fmt.Sprintf("%s.challenges[%d]", key, i), "unknown challenge %q: want %s or %s", c, ChallengeHTTP01, ChallengeTLSALPN01)
		}
	}
	if o := a.OnDemand; o != nil {
		if len(o.Hosts) == 0 && o.Ask == "" {
			k.errorf(key+".on_demand", "needs hosts or ask: otherwise any name pointed at the node would get a certificate")
		}
		for i, h := range o.Hosts {
			k.acmeName(fmt.Sprintf("%s.on_demand.hosts[%d]", key, i), strings.TrimPrefix(h, "*."))
		}
		if u, err := url.Parse(o.Ask); o.Ask != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			k.errorf(key+".on_demand.ask", "%q is not an http or https URL", o.Ask)
		}
	}
}

// acmeName refuses names a public CA cannot certify.
func (k *checker) acmeName(key, name string) {
	switch {
	case strings.Contains(name, "*"):
		k.errorf(key, "wildcard names need the dns-01 challenge, which is not supported: list the names")
	case !validHost(name) || net.ParseIP(name) != nil:
		k.errorf(key, "%q is not a DNS name", name)
	case !strings.Contains(name, ".") || name == "localhost" || slices.ContainsFunc([]string{".localhost", ".local", ".internal"}, func(s string) bool { return strings.HasSuffix(name, s) }):
		k.errorf(key, "%q is not a public name: a CA cannot check it", name)
	}
}
