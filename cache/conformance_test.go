package cache

// isStored reports whether the cache holds an object for a GET of target
// with the given request fields (following Vary), whatever its freshness.
func (e *env) isStored(target string, headers ...string) bool {
	e.t.Helper()
	e.waitFills()
	req := request("GET", target, headers...)
	r := e.c.newReply()
	defer r.Close()
	r.j.pol = e.pol
	var en entry
	found, _ := e.c.lookup(r, e.c.keys.intern(appendKey(nil, req, &e.pol.Key)), req, &en)
	if found {
		en.obj.Close()
	}
	return found
}
