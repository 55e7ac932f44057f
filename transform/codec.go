package transform

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/outpost-edge/outpost/proxy"
)

// Compression levels: a response is compressed once per coding and then
// served from the cache, so the levels favour size over speed a little
// more than a per-request compressor would.
const (
	brotliQuality = 6
	gzipLevel     = 6
	zstdWindow    = 1 << 20 // bounds the encoder's memory; text gains little from more
)

// encoder is a streaming compressor that can be reused.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

type zstdEncoder struct{ *zstd.Encoder }

func (z zstdEncoder) Reset(w io.Writer) { z.Encoder.Reset(w) }

var encoderPools = map[string]*sync.Pool{
	"br": {New: func() any { return brotli.NewWriterLevel(nil, brotliQuality) }},
	"gzip": {New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzipLevel) // the level is valid
		return w
	}},
	"zstd": {New: func() any {
		w, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow)) // valid options
		return zstdEncoder{w}
	}},
}

// encodeReader compresses src as it is read: each read of the source is
// fed to the encoder, whose output is handed out; memory is the encoder's
// window and one read's output. The encoder is flushed after each read of
// the source, before the source is read again: a streamed response
// (server-sent events, a page sent in parts) reaches the client as the
// origin sends it, at the cost of a few bytes per read (up to 32 KiB).
type encodeReader struct {
	src  io.ReadCloser
	pool *sync.Pool
	enc  encoder
	out  bytes.Buffer
	in   []byte
	err  error // the source's end (io.EOF) or failure, once met
}

func newEncodeReader(src io.ReadCloser, coding string) *encodeReader {
	pool := encoderPools[coding]
	r := &encodeReader{src: src, pool: pool, enc: pool.Get().(encoder), in: make([]byte, 32<<10)}
	r.enc.Reset(&r.out)
	return r
}

func (r *encodeReader) Read(p []byte) (int, error) {
	for r.out.Len() == 0 {
		if r.err != nil {
			return 0, r.err
		}
		n, err := r.src.Read(r.in)
		if n > 0 {
			r.enc.Write(r.in[:n]) // into a bytes.Buffer: cannot fail
		}
		switch {
		case err == io.EOF:
			r.enc.Close() // writes the coding's trailer
			r.err = io.EOF
		case err != nil:
			r.err = err
		case n > 0:
			r.enc.Flush() // the next read may wait for the origin
		}
	}
	return r.out.Read(p)
}

// Ready reports whether coded bytes are waiting or the source's are here
// (proxy.ReadyBody).
func (r *encodeReader) Ready() bool { return r.out.Len() > 0 || r.err != nil || proxy.BodyReady(r.src) }

// Close closes the source and returns the encoder to its pool.
func (r *encodeReader) Close() error {
	if r.enc != nil {
		r.enc.Reset(io.Discard)
		r.pool.Put(r.enc)
		r.enc = nil
	}
	return r.src.Close()
}

// decodeReader undoes a content coding for the rewriter, and closes both
// the decoder and the source.
type decodeReader struct {
	io.Reader
	src   io.Closer
	close func()
}

func (d *decodeReader) Close() error {
	if d.close != nil {
		d.close()
	}
	return d.src.Close()
}

// newDecodeReader returns src decoded from coding (gzip, br, zstd).
func newDecodeReader(src io.ReadCloser, coding string) (io.ReadCloser, error) {
	switch coding {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		return &decodeReader{Reader: zr, src: src}, nil
	case "br":
		return &decodeReader{Reader: brotli.NewReader(src), src: src}, nil
	case "zstd":
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd body: %w", err)
		}
		return &decodeReader{Reader: zr, src: src, close: zr.Close}, nil
	}
	return nil, fmt.Errorf("content coding %q cannot be decoded", coding)
}
