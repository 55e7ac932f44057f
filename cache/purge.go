package cache

import "github.com/outpost-edge/outpost/httphead"

// Purge removes the object stored under key, a storage key as Range and
// the purge index see it. A soft purge keeps the object but makes it stale
// now, so it is revalidated before its next use and may still be served
// within its stale-while-revalidate and stale-if-error windows. It reports
// whether an object was found.
func (c *Cache) Purge(key string, soft bool) bool {
	if !soft {
		if c.store.Delete(key) {
			c.stats.Purged.Add(1)
			return true
		}
		return false
	}
	obj, err := c.store.Lookup(key)
	if err != nil {
		return false
	}
	defer obj.Close()
	var m meta
	if decodeMeta(obj.Meta(), &m) != nil {
		return false
	}
	now := c.now()
	if m.kind == kindVary {
		m.purgedAt = now.UnixNano() // its variants are judged against this
	} else {
		m.lifetime = min(m.lifetime, m.age(now))
	}
	if c.store.UpdateMeta(key, m.encode(nil)) != nil {
		return false
	}
	c.stats.Purged.Add(1)
	return true
}

// PurgeURL purges the object a GET of scheme://host+target would find
// under pol's key spec (with no keyed request fields), with all its Vary
// variants. It reports whether an object was found.
func (c *Cache) PurgeURL(pol *Policy, scheme, host, target string, soft bool) bool {
	var req httphead.Request
	req.SetLine([]byte("GET"), []byte(target), []byte(host), []byte(scheme))
	return c.Purge(string(appendKey(nil, &req, &pol.Key)), soft)
}

// PurgeAll purges every stored object, softly or not, and returns how many.
func (c *Cache) PurgeAll(soft bool) int {
	var keys []string
	c.store.Range(func(key string, _ []byte) bool {
		keys = append(keys, key)
		return true
	})
	n := 0
	for _, k := range keys {
		if c.Purge(k, soft) {
			n++
		}
	}
	return n
}
