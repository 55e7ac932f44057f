package disk

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

func TestSmallObjectsAreReadWholeWithTheirHeader(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Capacity: 1 << 20})
	for _, tt := range []struct {
		size  int
		bytes bool
	}{
		{0, true},
		{1000, true},
		{headBuf - headAlign, true},
		{headBuf - headAlign + 1, false},
		{100_000, false},
	} {
		b := body("k", tt.size)
		mustPut(t, s, "k", []byte("m"), b)
		o, err := s.Lookup("k")
		if err != nil {
			t.Fatal(err)
		}
		bo, ok := o.(storage.Bytes)
		if ok != tt.bytes || ok && !bytes.Equal(bo.Bytes(), b) {
			t.Fatalf("%d-byte body: held in memory = %v, want %v", tt.size, ok, tt.bytes)
		}
		o.Close()
		mustHave(t, s, "k", []byte("m"), b)
	}
}

func TestWriteToSendsTheBody(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Capacity: 64 << 20})
	want := body("k", 3<<20)
	mustPut(t, s, "k", []byte("m"), want)
	o, err := s.Lookup("k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	wt, ok := o.(io.WriterTo)
	if !ok {
		t.Fatal("a file-backed object is not an io.WriterTo")
	}

	var buf bytes.Buffer
	if n, err := wt.WriteTo(&buf); n != int64(len(want)) || err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WriteTo a buffer: n=%d err=%v", n, err)
	}

	// Twice to a socket (sendfile), so the second send starts over.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for range 2 {
		if n, err := wt.WriteTo(c); n != int64(len(want)) || err != nil {
			t.Fatalf("WriteTo a TCP connection: n=%d err=%v", n, err)
		}
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, append(want, want...)) {
		t.Fatalf("the peer received %d bytes, want the body twice (%d)", len(b), 2*len(want))
	}
}

// In-place header rewrites race with Lookups reading the header: a reader
// must see one metadata or the other, never a mix, and the body intact.
func TestConcurrentUpdateMetaNeverTearsHeaders(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Capacity: 1 << 20})
	// Metadata over a page, so a header takes two reads.
	metas := [][]byte{bytes.Repeat([]byte("a"), 6000), bytes.Repeat([]byte("b"), 6000)}
	for _, size := range []int{100, 10_000} {
		b := body("k", size)
		mustPut(t, s, "k", metas[0], b)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 500 {
				if err := s.UpdateMeta("k", metas[i%2]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		for i := 0; ; i++ {
			if i > 10_000_000 {
				t.Fatal("the updates did not finish")
			}
			m, got, ok, err := get(s, "k")
			if err != nil || !ok || !bytes.Equal(got, b) || !bytes.Equal(m, metas[0]) && !bytes.Equal(m, metas[1]) {
				t.Fatalf("read %d: found=%v err=%v body equal=%v meta %.20q", i, ok, err, bytes.Equal(got, b), m)
			}
			if isClosed(done) {
				break
			}
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
