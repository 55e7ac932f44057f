package cache

import (
	"encoding/binary"
	"strings"

	"github.com/outpost-edge/outpost/httphead"
)

// Purge removes the object stored under key, a storage key as Range and
// the purge index see it. A soft purge keeps the object but makes it stale
// now, so it is revalidated before its next use and may still be served
// within its stale-while-revalidate and stale-if-error windows. It reports
// whether an object was found.
func (c *Cache) Purge(key string, soft bool) bool {
	if !soft {
		return c.purgeHard(key)
	}
	obj, err := c.store.Lookup(key)
	if err != nil {
		// Nothing to mark stale, but a fill may be on its way: under a URL
		// purge the delete marks the key, so that the fill is refused.
		c.store.Delete(key)
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

// purgeHard deletes the object under key; a Vary marker goes with every
// variant stored under its epoch (those of older markers are unreachable
// already). Variant keys hold request field values, so they are found by
// walking the store: a hard purge of a varying URL costs a pass over the
// keys (a soft one goes through the marker and costs none).
func (c *Cache) purgeHard(key string) bool {
	var prefix string // of the marker's variants
	if obj, err := c.store.Lookup(key); err == nil {
		var m meta
		if decodeMeta(obj.Meta(), &m) == nil && m.kind == kindVary {
			prefix = string(binary.LittleEndian.AppendUint64([]byte(key+variantSep), m.epoch))
		}
		obj.Close()
	}
	// Deleted whether or not it was found: under a URL purge the delete
	// marks the key, so that a fill racing the purge is refused.
	found := c.remove(key)
	if prefix == "" {
		return found
	}
	var variants []string
	c.store.Range(func(k string, _ []byte) bool {
		if strings.HasPrefix(k, prefix) {
			variants = append(variants, k)
		}
		return true
	})
	for _, k := range variants {
		c.remove(k)
	}
	return found
}

// remove deletes the object under key and counts it as purged.
func (c *Cache) remove(key string) bool {
	if c.store.Delete(key) {
		c.stats.Purged.Add(1)
		return true
	}
	return false
}

// PurgeURL purges the object a GET of req would find under pol's key spec
// (with no keyed request fields), with all its Vary variants. It reports
// whether an object was found.
func (c *Cache) PurgeURL(pol *Policy, req *httphead.Request, soft bool) bool {
	return c.Purge(string(appendKey(nil, req, &pol.Key)), soft)
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
		// Variants are among the keys: a hard purge deletes each one
		// rather than walking the store again for every marker.
		if (soft && c.Purge(k, true)) || (!soft && c.remove(k)) {
			n++
		}
	}
	return n
}
