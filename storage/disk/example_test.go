package disk_test

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/outpost-edge/outpost/storage/disk"
)

func Example() {
	dir, err := os.MkdirTemp("", "outpost-disk")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := disk.Open(dir, disk.Options{Capacity: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	// A fill: the object is visible only once committed.
	w, err := s.Create("https://example.com/", []byte("stored response head"), -1)
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(w, "hello, edge")
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	s.Close()

	// After a restart the object is served again.
	s, err = disk.Open(dir, disk.Options{Capacity: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	o, err := s.Lookup("https://example.com/")
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close()
	body, _ := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	fmt.Printf("%s: %s\n", o.Meta(), body)
	// Output: stored response head: hello, edge
}
