package cache

import (
	"fmt"
	"testing"
	"time"
)

// A flood of uncacheable URLs keeps the hit-for-pass marks within
// maxHitForPass.
func TestHitForPassMarksStayBoundedUnderAFlood(t *testing.T) {
	e := newEnv(t)
	for i := range 3 * maxHitForPass {
		e.c.setHitForPass(fmt.Sprint("https://example.com/u", i), time.Hour)
		if i%4096 == 0 && len(e.c.hfp) > maxHitForPass {
			t.Fatalf("after %d marks %d are held, bound %d", i, len(e.c.hfp), maxHitForPass)
		}
	}
	if n := len(e.c.hfp); n > maxHitForPass {
		t.Fatalf("%d marks held, bound %d", n, maxHitForPass)
	}
}

// Clients choosing URLs at will keep the interned keys within
// keyShardBytes per shard.
func TestInternedKeysStayBoundedInBytes(t *testing.T) {
	kt := &newEnv(t).c.keys
	for i := range 1_000_000 {
		kt.intern(fmt.Appendf(nil, "https://example.com/%d?%x", i, i*7919))
	}
	for i := range kt.shards {
		s := &kt.shards[i]
		if s.bytes > keyShardBytes {
			t.Fatalf("shard %d holds %d bytes of keys, bound %d", i, s.bytes, keyShardBytes)
		}
	}
}
