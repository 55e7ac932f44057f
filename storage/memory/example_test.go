package memory_test

import (
	"fmt"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/memory"
)

func Example() {
	s := memory.New(memory.Options{Capacity: 64 << 20})

	w, _ := s.Create("GET https://files.example.org/simple/", []byte("encoded response head"), -1)
	w.Write([]byte("<html>index</html>"))
	if err := w.Commit(); err != nil {
		fmt.Println(err)
	}

	o, err := s.Lookup("GET https://files.example.org/simple/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer o.Close()
	// The body is held whole: write it to the socket without copying.
	fmt.Printf("%s %d\n", o.(storage.Bytes).Bytes(), s.Stats().Objects)
	// Output: <html>index</html> 1
}
