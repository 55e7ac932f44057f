package demo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Generated files are between these sizes, picked from the file name.
const (
	minFileSize = 4 << 10
	maxFileSize = 1 << 20
)

// file is one release file. Everything but content is fixed at creation;
// content is generated on first use unless it was uploaded.
type file struct {
	project, version string
	name             string // e.g. left_pad-1.0.0.tar.gz
	path             string // /packages/aa/bb/<name>
	uploaded         time.Time

	once   sync.Once
	data   []byte
	sha256 string // hex
}

func newFile(project, version string, uploaded time.Time, data []byte) *file {
	name := strings.ReplaceAll(project, "-", "_") + "-" + version + ".tar.gz"
	h := sha256.Sum256([]byte(name))
	dir := hex.EncodeToString(h[:2])
	f := &file{
		project:  project,
		version:  version,
		name:     name,
		path:     "/packages/" + dir[:2] + "/" + dir[2:] + "/" + name,
		uploaded: uploaded,
		data:     data,
	}
	return f
}

// content returns the file bytes and their SHA-256, generating them once.
func (f *file) content() ([]byte, string) {
	f.once.Do(func() {
		if f.data == nil {
			f.data = f.generate()
		}
		sum := sha256.Sum256(f.data)
		f.sha256 = hex.EncodeToString(sum[:])
	})
	return f.data, f.sha256
}

// etag is the strong validator of the file: a prefix of its digest.
func (f *file) etag() string {
	_, sum := f.content()
	return `"` + sum[:32] + `"`
}

// generate builds a real sdist-shaped .tar.gz: PKG-INFO plus a data file of
// pseudo-random bytes seeded by the file name, so every run serves the same
// bytes. Random data does not compress, so the archive size is about the
// data size.
func (f *file) generate() []byte {
	seed := sha256.Sum256([]byte(f.name))
	size := minFileSize + int(binary.BigEndian.Uint32(seed[:4]))%(maxFileSize-minFileSize)
	payload := make([]byte, size)
	rand.NewChaCha8(seed).Read(payload)

	root := strings.TrimSuffix(f.name, ".tar.gz")
	pkgInfo := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", f.project, f.version)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // the level is valid
	tw := tar.NewWriter(zw)
	for _, e := range []struct {
		name string
		body []byte
	}{
		{root + "/PKG-INFO", []byte(pkgInfo)},
		{root + "/data.bin", payload},
	} {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), ModTime: f.uploaded, Format: tar.FormatUSTAR}
		// Writes to a bytes.Buffer cannot fail, and the header is valid USTAR.
		tw.WriteHeader(hdr)
		tw.Write(e.body)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}
