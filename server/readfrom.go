package server

import (
	"io"
	"net"
)

// ReadFrom sends a whole body of known length from r. When r can write
// itself to a socket (a disk object: sendfile) the bytes go from the page
// cache to the socket without passing through this process.
func (c *h1Conn) ReadFrom(r io.Reader) (int64, error) {
	if c.noBody {
		return 0, nil
	}
	if c.chunked {
		return io.Copy(writerOnly{c}, r) // each Write frames a chunk
	}
	if err := c.bw.Flush(); err != nil {
		return 0, err
	}
	if _, ok := c.conn.(*net.TCPConn); ok {
		if wt, ok := r.(io.WriterTo); ok {
			return wt.WriteTo(c.conn)
		}
	}
	return io.Copy(c.conn, r)
}

// writerOnly hides ReadFrom, so io.Copy does not call it again.
type writerOnly struct{ io.Writer }
