package evict_test

import (
	"fmt"

	"github.com/outpost-edge/outpost/evict"
)

// A store weighs each object in bytes, reports hits with Touch and deletes
// what Insert evicts.
func ExamplePolicy() {
	p := evict.New(1000) // bytes
	stored := map[uint64]bool{}
	drop := func(key uint64) { delete(stored, key) }

	for key := range uint64(12) {
		if p.Insert(key, 100, drop) {
			stored[key] = true
		}
		p.Touch(0) // key 0 is popular
	}
	fmt.Println(p.Len(), p.Weight(), stored[0])
	// Output: 10 1000 true
}
