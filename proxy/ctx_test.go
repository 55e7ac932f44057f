package proxy

import "testing"

// Two owners of connection state never see or overwrite each other's
// (a shared untyped slot let an embedder's state break the edge's
// in-flight limit).
func TestKeysKeepEachOwnersStateApart(t *testing.T) {
	type mine struct{ n int }
	type theirs struct{ s string }
	a, b := NewKey[*mine](), NewKey[*theirs]()
	c := &Ctx{}
	if _, ok := a.Get(c); ok {
		t.Fatal("state before Set")
	}
	a.Set(c, &mine{1})
	b.Set(c, &theirs{"x"})
	if v, ok := a.Get(c); !ok || v.n != 1 {
		t.Errorf("a: %v %v", v, ok)
	}
	if v, ok := b.Get(c); !ok || v.s != "x" {
		t.Errorf("b: %v %v", v, ok)
	}
	if n := testing.AllocsPerRun(100, func() { a.Get(c) }); n != 0 {
		t.Errorf("Get allocates %v", n)
	}
}
