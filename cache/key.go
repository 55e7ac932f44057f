package cache

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sync"

	"github.com/outpost-edge/outpost/httphead"
)

// appendKey appends the primary cache key of req under spec:
// "[origin]scheme://host/path?query" followed, for each keyed request
// field, by "\x00name=value". Host and path are the request's canonical
// ones (httphead's canon.go), so every form of a URL has one key.
func appendKey(dst []byte, req *httphead.Request, spec *KeySpec) []byte {
	if spec.Origin != "" {
		dst = append(dst, '[')
		dst = append(dst, spec.Origin...)
		dst = append(dst, ']')
	}
	if !spec.IgnoreScheme {
		dst = append(dst, req.Scheme...)
		dst = append(dst, "://"...)
	}
	if !spec.IgnoreHost {
		dst = append(dst, req.Host...)
	}
	dst = append(dst, req.Path...)
	switch spec.Query {
	case QueryAll:
		if req.Query != nil {
			dst = append(dst, '?')
			dst = append(dst, req.Query...)
		}
	case QueryList:
		dst = appendQueryParams(dst, req.Query, spec.QueryParams)
	}
	for _, name := range spec.Headers {
		dst = appendField(dst, &req.Header, name)
	}
	return dst
}

// appendQueryParams appends "?a=1&b=2" holding only the named parameters,
// in the order of names, each occurrence in request order.
func appendQueryParams(dst, query []byte, names []string) []byte {
	sep := byte('?')
	for _, name := range names {
		q := query
		for len(q) > 0 {
			var pair []byte
			if i := bytes.IndexByte(q, '&'); i >= 0 {
				pair, q = q[:i], q[i+1:]
			} else {
				pair, q = q, nil
			}
			k := pair
			if i := bytes.IndexByte(pair, '='); i >= 0 {
				k = pair[:i]
			}
			if string(k) == name {
				dst = append(dst, sep)
				dst = append(dst, pair...)
				sep = '&'
			}
		}
	}
	return dst
}

// appendField appends "\x00name=v1,v2" with the values of every line of the
// field, trimmed, or "\x00name" when the field is absent.
func appendField(dst []byte, h *httphead.Header, name string) []byte {
	dst = append(dst, 0)
	dst = append(dst, name...)
	first := true
	h.Values(name, func(v []byte) bool {
		if first {
			dst = append(dst, '=')
			first = false
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, httphead.TrimOWS(v)...)
		return true
	})
	return dst
}

// variantSep follows the primary key in every variant key; no primary key
// holds it (keys carry no NUL), so the variants of a key share its prefix.
const variantSep = "\x00v"

// appendVariant appends the secondary key of a response that varies on
// the fields listed in vary (the Vary values joined by commas): the marker's
// epoch, so variants of a replaced marker are never found again, then each
// field's request values, normalised (see appendVaried). With normAE,
// Accept-Encoding enters as the one coding the cache asks origins for (see
// acceptEncoding).
func appendVariant(dst []byte, epoch uint64, vary []byte, h *httphead.Header, normAE bool) []byte {
	dst = append(dst, variantSep...)
	dst = binary.LittleEndian.AppendUint64(dst, epoch)
	forEachToken(vary, func(name []byte) {
		dst = appendVaried(dst, h, name, normAE)
	})
	return dst
}

// acceptEncoding reduces a request's Accept-Encoding to the one coding the
// cache asks origins for: the client's preferred of br, zstd and gzip by
// weight, ties in that order, or "" (identity); see
// httphead.PreferredCoding. Clients that send the same preference in
// different words then share one stored variant, as Varnish and most CDNs
// arrange: at most four per object.
func acceptEncoding(h *httphead.Header) string { return httphead.PreferredCoding(h) }

// forEachToken calls fn for each non-empty element of a comma-separated list.
func forEachToken(list []byte, fn func([]byte)) {
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, nil
		}
		if item = httphead.TrimOWS(item); len(item) > 0 {
			fn(item)
		}
	}
}

// keyTable interns key strings, so that a hit turns the key bytes it built
// into a string (for Store.Lookup and the trace) without allocating. It is
// bounded in bytes: a shard that fills up is cleared.
type keyTable struct {
	seed   maphash.Seed
	shards [64]keyShard
}

type keyShard struct {
	mu    sync.RWMutex
	m     map[string]string
	bytes int
}

// keyShardBytes bounds each shard's keys (16 MiB over all shards).
const keyShardBytes = 256 << 10

func (t *keyTable) intern(b []byte) string {
	s := &t.shards[maphash.Bytes(t.seed, b)%uint64(len(t.shards))]
	s.mu.RLock()
	k, ok := s.m[string(b)]
	s.mu.RUnlock()
	if ok {
		return k
	}
	k = string(b)
	if len(k) > keyShardBytes/16 {
		return k // too long to keep: this request pays for its string
	}
	s.mu.Lock()
	if s.m == nil || s.bytes+len(k) > keyShardBytes {
		s.m, s.bytes = make(map[string]string), 0
	}
	s.m[k] = k
	s.bytes += len(k)
	s.mu.Unlock()
	return k
}
