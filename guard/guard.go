// Package guard classifies clients and says what to do with each request:
// allow, deny (403), rate-limit, tarpit (answer slowly) or challenge (a
// proof-of-work page that sets a signed pass cookie). It owns the
// fingerprints rules look at (JA4 for the TLS ClientHello, JA4H for the
// request head), header anomalies, CIDR lists, the rule list and the
// stateless challenge. It has no upstreams and no cache, and it does not
// count rates itself: a rate_limit verdict names a limit that the engine
// applies with package limit.
//
// The engine's order of work for one request:
//
//	attrs.Reset(clientIP, conn.JA4, req)        // JA4 computed once per TLS connection
//	v := rules.Evaluate(&attrs)
//	switch v.Action {
//	case ActionChallenge: serve AppendPage (403) unless challenge.Passed(req, ip, now)
//	case ActionRateLimit: check limiter v.Limit; within it, rules.EvaluateFrom(&attrs, v.Next)
//	...
//	}
//
// and it routes Challenge.VerifyPath to Challenge.ServeHTTP (or its Verify
// and AppendSetCookie).
//
// Evaluating rules, computing JA4H and checking a pass allocate nothing in
// steady state.
//
// Licensing: JA4 (TLS client) is BSD 3-Clause. JA4H belongs to FoxIO's JA4+
// suite, licensed under the FoxIO License 1.1, which permits use within an
// organisation but not selling it as part of a product or service without
// a licence from FoxIO. Whoever ships Outpost commercially should keep JA4H
// off or obtain that licence.
package guard
