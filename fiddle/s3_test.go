package fiddle

import "testing"

// A bucket in a fiddle is a mock like any origin: the store is never
// reached and no credential is read (the environment has none, which a
// real bucket would refuse).
func TestBucketIsMocked(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	out := runOK(t, &Request{Config: `
upstreams:
  store:
    type: s3
    s3: {bucket: b, endpoint: "http://192.0.2.1:9000", credentials: {source: env}}
routes:
  - {name: all, upstream: store}
`, Origins: map[string][]Rule{"store": {{Path: "/a.txt", Body: "mocked"}}},
		Requests: []Step{{URL: "http://x.test/a.txt"}}})
	if out[0].Response.Status != 200 || out[0].Response.Body != "mocked" {
		t.Fatalf("bucket: %d %q", out[0].Response.Status, out[0].Response.Body)
	}
}
