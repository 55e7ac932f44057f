package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Upstream types.
const (
	UpstreamHTTP = "http" // HTTP servers, listed in servers
	UpstreamS3   = "s3"   // an S3-compatible bucket, described by s3
)

// S3Origin is an S3-compatible bucket (AWS S3, Backblaze B2, Cloudflare
// R2, MinIO, Ceph) served as an origin: requests are signed with AWS
// Signature Version 4, only GET and HEAD of single objects are ever sent,
// and the store's 403 and 404 both reach clients as a plain 404.
type S3Origin struct {
	// Bucket is the bucket name. Required.
	Bucket string `yaml:"bucket"`
	// Region is the region requests are signed for. Default:
	// "us-east-1" ("auto" for R2).
	Region string `yaml:"region"`
	// Endpoint is the store's base URL, http(s)://host[:port]. Default:
	// "", https://s3.REGION.amazonaws.com.
	Endpoint string `yaml:"endpoint"`
	// PathStyle puts the bucket in the URL path (endpoint/bucket/key)
	// instead of the host name (bucket.endpoint/key), as MinIO and Ceph
	// usually need. Default: false, virtual-host style.
	PathStyle bool `yaml:"path_style"`
	// URLPrefix is the request path prefix served from the bucket; paths
	// outside it are 404. Default: "/", every path.
	URLPrefix string `yaml:"url_prefix"`
	// KeyPrefix replaces URLPrefix to make the object key: with
	// url_prefix /pkgs/ and key_prefix mirror/, /pkgs/a.tgz is the
	// object mirror/a.tgz. Default: "", the key is the path after
	// url_prefix.
	KeyPrefix string `yaml:"key_prefix"`
	// Index is the object name served for a path ending in "/" (e.g.
	// "index.html"). Default: "", such paths are 404: a bucket is never
	// listed.
	Index string `yaml:"index"`
	// Credentials say where the signing keys come from.
	Credentials S3Credentials `yaml:"credentials"`
}

func (s *S3Origin) setDefaults() {
	*s = S3Origin{Region: "us-east-1", URLPrefix: "/"}
	s.Credentials.setDefaults()
}

// S3Credentials is where an S3 upstream's keys come from. They are read
// into memory, never logged, never put in a trace and never sent anywhere
// but in the signature.
type S3Credentials struct {
	// Source is chain (the AWS SDK's default chain: environment, shared
	// files, web identity, container and EC2 instance metadata), env
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), file
	// (File, in the INI format of ~/.aws/credentials) or anonymous
	// (unsigned, a public bucket). Default: chain.
	Source string `yaml:"source"`
	// File is the credentials file of source file; it should be readable
	// by Outpost's user only. Default: "".
	File string `yaml:"file"`
	// Profile is the section of File to read. Default: "default".
	Profile string `yaml:"profile"`
}

func (c *S3Credentials) setDefaults() { *c = S3Credentials{Source: "chain", Profile: "default"} }

// EndpointURL returns the endpoint in effect: Endpoint, or AWS's for the
// region.
func (s *S3Origin) EndpointURL() string {
	if s.Endpoint != "" {
		return s.Endpoint
	}
	return "https://s3." + s.Region + ".amazonaws.com"
}

// s3Upstream checks an upstream's type and, for an S3 one, its bucket.
func (k *checker) s3Upstream(key string, u *Upstream) {
	k.oneOf(key+".type", u.Type, UpstreamHTTP, UpstreamS3)
	if b := k.c.Upstreams[u.Failover.BackupUpstream]; b != nil && (b.Type == UpstreamS3 || u.Type == UpstreamS3) {
		k.errorf(key+".failover.backup_upstream", "failover is between HTTP upstreams; use routes[].fallback for a bucket")
	}
	if u.Type != UpstreamS3 {
		if u.S3 != nil {
			k.errorf(key+".s3", "is used only with type: s3")
		}
		return
	}
	if len(u.Servers) > 0 || u.DNS != nil {
		k.errorf(key+".servers", "an s3 upstream has no servers: its endpoint is s3.endpoint")
	}
	s, key := u.S3, key+".s3"
	if s == nil {
		k.errorf(key, "type s3 needs an s3 block with at least a bucket")
		return
	}
	if s.Bucket == "" {
		k.errorf(key+".bucket", "is required")
	} else if !s.PathStyle && !validHost(s.Bucket) {
		k.errorf(key+".bucket", "%q cannot be a host name label: use path_style: true", s.Bucket)
	}
	if s.Region == "" {
		k.errorf(key+".region", "is required")
	}
	if s.Endpoint != "" {
		e, err := url.Parse(s.Endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || (e.Path != "" && e.Path != "/") || e.RawQuery != "" || e.User != nil {
			k.errorf(key+".endpoint", "%q: want http(s)://host[:port], without path, query or user", s.Endpoint)
		}
	}
	if !strings.HasPrefix(s.URLPrefix, "/") {
		k.errorf(key+".url_prefix", "must start with /")
	}
	k.pathChars(key+".url_prefix", s.URLPrefix)
	if strings.HasPrefix(s.KeyPrefix, "/") {
		k.errorf(key+".key_prefix", "object keys do not start with /")
	}
	if strings.Contains(s.Index, "/") {
		k.errorf(key+".index", "is an object name, without /")
	}
	c := &s.Credentials
	k.oneOf(key+".credentials.source", c.Source, "chain", "env", "file", "anonymous")
	if (c.Source == "file") != (c.File != "") {
		k.errorf(key+".credentials.file", "is required with source: file, and used only with it")
	}
	k.file(key+".credentials.file", c.File, false)
}

// routeFallback checks a route's fallback chain.
func (k *checker) routeFallback(key string, r *Route) {
	seen := map[string]bool{r.Upstream: true}
	for i, name := range r.Fallback {
		fk := fmt.Sprintf("%s.fallback[%d]", key, i)
		switch {
		case k.c.Upstreams[name] == nil:
			k.errorf(fk, "unknown upstream %q%s", name, suggest(name, k.upstreamNames()))
		case seen[name]:
			k.errorf(fk, "upstream %q is already in the chain", name)
		}
		seen[name] = true
	}
	if len(r.Fallback) > 0 && r.Upstream == "" {
		k.errorf(key+".fallback", "needs upstream (the first hop)")
	}
	for i, s := range r.FallbackOn {
		k.intRange(fmt.Sprintf("%s.fallback_on[%d]", key, i), s, 100, 599)
	}
}
