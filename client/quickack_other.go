//go:build !linux

package client

// quickAck does nothing where TCP_QUICKACK does not exist.
func (c *conn) quickAck() {}
