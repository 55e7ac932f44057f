package cache

import "github.com/outpost-edge/outpost/httphead"

// Trailers passes on the trailers of an origin body streamed through
// unstored (gRPC's status travels in trailers); nil when it has none.
func (o *originBody) Trailers() *httphead.Header {
	if t, ok := o.rc.(interface{ Trailers() *httphead.Header }); ok {
		return t.Trailers()
	}
	return nil
}
