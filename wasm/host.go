package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/outpost-edge/outpost/httphead"
)

// Status codes of the ABI (proxy-wasm spec, WasmResult).
const (
	statusOK                  = 0
	statusNotFound            = 1
	statusBadArgument         = 2
	statusInvalidMemoryAccess = 6
	statusCasMismatch         = 8
	statusUnimplemented       = 12
)

// Map and buffer types of the ABI.
const (
	mapRequestHeaders   = 0
	mapRequestTrailers  = 1
	mapResponseHeaders  = 2
	mapResponseTrailers = 3

	bufferRequestBody         = 0
	bufferResponseBody        = 1
	bufferVMConfiguration     = 6
	bufferPluginConfiguration = 7
)

// maxLogLine bounds one log message from a filter.
const maxLogLine = 4096

var i32 = api.ValueTypeI32
var i64 = api.ValueTypeI64

// hostFunc is one import of the "env" module.
type hostFunc struct {
	name   string
	params []api.ValueType
	fn     func(s *stream, m api.Memory, p []uint64) uint32
}

// hostFuncs are the ABI functions a module may import. Those not listed
// make instantiation fail; those listed but not supported answer
// Unimplemented (see unsupported).
var hostFuncs = []hostFunc{
	{"proxy_log", ii(3), hostLog},
	{"proxy_get_log_level", ii(1), func(s *stream, m api.Memory, p []uint64) uint32 {
		return okIf(m.WriteUint32Le(uint32(p[0]), 2)) // info: the node's log filters levels
	}},
	{"proxy_get_current_time_nanoseconds", ii(1), func(s *stream, m api.Memory, p []uint64) uint32 {
		return okIf(m.WriteUint64Le(uint32(p[0]), uint64(time.Now().UnixNano())))
	}},
	{"proxy_get_property", ii(4), hostGetProperty},
	{"proxy_set_property", ii(4), unsupported},
	{"proxy_get_header_map_pairs", ii(3), hostGetHeaderMapPairs},
	{"proxy_set_header_map_pairs", ii(3), hostSetHeaderMapPairs},
	{"proxy_get_header_map_value", ii(5), hostGetHeaderMapValue},
	{"proxy_replace_header_map_value", ii(5), func(s *stream, m api.Memory, p []uint64) uint32 { return hostEditHeader(s, m, p, "set") }},
	{"proxy_add_header_map_value", ii(5), func(s *stream, m api.Memory, p []uint64) uint32 { return hostEditHeader(s, m, p, "add") }},
	{"proxy_remove_header_map_value", ii(3), func(s *stream, m api.Memory, p []uint64) uint32 { return hostEditHeader(s, m, p, "remove") }},
	{"proxy_get_header_map_size", ii(2), hostGetHeaderMapSize},
	{"proxy_get_buffer_bytes", ii(5), hostGetBufferBytes},
	{"proxy_get_buffer_status", ii(3), hostGetBufferStatus},
	{"proxy_set_buffer_bytes", ii(5), hostSetBufferBytes},
	{"proxy_send_local_response", ii(8), hostSendLocalResponse},
	{"proxy_continue_stream", ii(1), ok},
	{"proxy_close_stream", ii(1), unsupported},
	{"proxy_continue_request", nil, ok},
	{"proxy_continue_response", nil, ok},
	{"proxy_clear_route_cache", nil, ok},
	{"proxy_done", nil, ok},
	{"proxy_set_effective_context", ii(1), func(s *stream, m api.Memory, p []uint64) uint32 {
		if uint32(p[0]) == s.id || uint32(p[0]) == rootID {
			return statusOK
		}
		return statusBadArgument
	}},
	{"proxy_set_tick_period_milliseconds", ii(1), hostSetTickPeriod},
	{"proxy_get_shared_data", ii(5), hostGetSharedData},
	{"proxy_set_shared_data", ii(5), hostSetSharedData},
	{"proxy_register_shared_queue", ii(3), hostRegisterSharedQueue},
	{"proxy_resolve_shared_queue", ii(5), hostResolveSharedQueue},
	{"proxy_dequeue_shared_queue", ii(3), hostDequeueSharedQueue},
	{"proxy_enqueue_shared_queue", ii(3), hostEnqueueSharedQueue},
	{"proxy_http_call", ii(10), unsupported},
	{"proxy_dispatch_http_call", ii(10), hostDispatchHttpCall},
	{"proxy_call_foreign_function", ii(6), unsupported},
	{"proxy_define_metric", ii(4), hostDefineMetric},
	{"proxy_increment_metric", []api.ValueType{i32, i64}, hostIncrementMetric},
	{"proxy_record_metric", []api.ValueType{i32, i64}, hostRecordMetric},
	{"proxy_get_metric", ii(2), hostGetMetric},
}

// ii returns n i32 parameter types.
func ii(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for k := range t {
		t[k] = i32
	}
	return t
}

func ok(*stream, api.Memory, []uint64) uint32          { return statusOK }
func unsupported(*stream, api.Memory, []uint64) uint32 { return statusUnimplemented }

func okIf(written bool) uint32 {
	if written {
		return statusOK
	}
	return statusInvalidMemoryAccess
}

// instantiateHost adds the "env" module of the ABI functions to rt.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder("env")
	for _, h := range hostFuncs {
		fn, params := h.fn, h.params
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			i, _ := ctx.Value(instanceKey{}).(*instance)
			s := &stream{} // outside a request (root context): no headers, no properties of one
			if i != nil && i.cur != nil {
				s = i.cur
			} else if i != nil {
				s.f, s.inst = i.f, i
			}
			for k, t := range params {
				if t == i32 {
					stack[k] = uint64(uint32(stack[k])) // the upper half of an i32 is undefined
				}
			}
			stack[0] = uint64(fn(s, mod.Memory(), stack))
		}), h.params, []api.ValueType{i32}).Export(h.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// read returns a view of the module's memory (valid until it grows).
func read(m api.Memory, ptr, size uint64) ([]byte, bool) {
	if size == 0 {
		return nil, true
	}
	return m.Read(uint32(ptr), uint32(size))
}

// give copies data into memory the module allocates and writes its
// address and size where the module asked.
func (s *stream) give(m api.Memory, data []byte, retPtr, retSize uint64) uint32 {
	var p uint32
	if len(data) > 0 {
		if s.inst == nil {
			return statusInvalidMemoryAccess
		}
		var err error
		if p, err = s.inst.allocate(uint32(len(data))); err != nil || !m.Write(p, data) {
			return statusInvalidMemoryAccess
		}
	}
	return okIf(m.WriteUint32Le(uint32(retPtr), p) && m.WriteUint32Le(uint32(retSize), uint32(len(data))))
}

func hostLog(s *stream, m api.Memory, p []uint64) uint32 {
	msg, ok := read(m, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	if len(msg) > maxLogLine {
		msg = msg[:maxLogLine]
	}
	if s.f == nil {
		return statusOK
	}
	level := slog.LevelInfo
	switch p[0] {
	case 0, 1: // trace, debug
		level = slog.LevelDebug
	case 3:
		level = slog.LevelWarn
	case 4, 5: // error, critical
		level = slog.LevelError
	}
	s.f.log.Log(context.Background(), level, string(msg))
	return statusOK
}

// header returns the header map a map type names in the current phase.
func (s *stream) header(mapType uint64) *httphead.Header {
	switch {
	case s.c == nil:
		return nil
	case mapType == mapRequestHeaders:
		return &s.c.Request.Header
	case mapType == mapResponseHeaders && s.resp != nil:
		return &s.resp.Header
	case mapType == mapCallResponseHeaders && s.call != nil && s.call.resp != nil:
		return &s.call.resp.Header
	case mapType == s.trailOf && s.trail != nil:
		return s.trail
	}
	return nil
}

// pseudo returns the value of an HTTP/2 style pseudo-header field.
func (s *stream) pseudo(mapType uint64, name string) ([]byte, bool) {
	if mapType == mapRequestHeaders {
		r := s.c.Request
		switch name {
		case ":method":
			return r.Method, true
		case ":path":
			return r.Target, true
		case ":authority":
			return r.Host, true
		case ":scheme":
			return r.Scheme, true
		}
	} else if resp := s.response(mapType); name == ":status" && resp != nil {
		return []byte(strconv.Itoa(resp.Status)), true
	}
	return nil, false
}

// response returns the response a response header map type names.
func (s *stream) response(mapType uint64) *httphead.Response {
	switch mapType {
	case mapResponseHeaders:
		return s.resp
	case mapCallResponseHeaders:
		if s.call != nil {
			return s.call.resp
		}
	}
	return nil
}

// The pseudo-header fields a header map starts with.
var (
	requestPseudo  = []string{":method", ":path", ":authority", ":scheme"}
	responsePseudo = []string{":status"}
)

// appendPairs serializes a header map in the ABI's form: the number of
// pairs, each name and value size, then each name and value followed by
// NUL. Names are lowercased, as HTTP/2 sends them.
func (s *stream) appendPairs(dst []byte, mapType uint64, h *httphead.Header) []byte {
	var names []string // trailers have no pseudo-header fields
	switch mapType {
	case mapRequestHeaders:
		names = requestPseudo
	case mapResponseHeaders, mapCallResponseHeaders:
		names = responsePseudo
	}
	n := h.Len() + len(names)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	for _, name := range names {
		v, _ := s.pseudo(mapType, name)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(name)))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v)))
	}
	for k := 0; k < h.Len(); k++ {
		name, v := h.Field(k)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(name)))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v)))
	}
	for _, name := range names {
		v, _ := s.pseudo(mapType, name)
		dst = append(append(append(append(dst, name...), 0), v...), 0)
	}
	for k := 0; k < h.Len(); k++ {
		name, v := h.Field(k)
		dst = append(appendLower(dst, name), 0)
		dst = append(append(dst, v...), 0)
	}
	return dst
}

func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// parsePairs decodes a header map in the ABI's form.
func parsePairs(b []byte, fn func(name, value []byte)) bool {
	if len(b) < 4 {
		return len(b) == 0
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n)*8 > uint64(len(b)-4) {
		return false
	}
	sizes, data := b[4:4+8*n], b[4+8*n:]
	for k := uint32(0); k < n; k++ {
		ns, vs := binary.LittleEndian.Uint32(sizes[8*k:]), binary.LittleEndian.Uint32(sizes[8*k+4:])
		if uint64(ns)+uint64(vs)+2 > uint64(len(data)) {
			return false
		}
		fn(data[:ns], data[ns+1:ns+1+vs])
		data = data[ns+vs+2:]
	}
	return true
}

func hostGetHeaderMapPairs(s *stream, m api.Memory, p []uint64) uint32 {
	h := s.header(p[0])
	if h == nil {
		return s.give(m, nil, p[1], p[2])
	}
	s.inst.pairs = s.appendPairs(s.inst.pairs[:0], p[0], h)
	return s.give(m, s.inst.pairs, p[1], p[2])
}

func hostSetHeaderMapPairs(s *stream, m api.Memory, p []uint64) uint32 {
	h := s.header(p[0])
	if h == nil {
		return statusNotFound
	}
	b, ok := read(m, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	var next httphead.Header
	if !parsePairs(b, func(name, value []byte) {
		if len(name) > 0 && name[0] != ':' {
			next.Add(name, value)
		}
	}) {
		return statusBadArgument
	}
	h.CopyFrom(&next)
	s.edit("replace", []byte("all"))
	return statusOK
}

func hostGetHeaderMapValue(s *stream, m api.Memory, p []uint64) uint32 {
	h := s.header(p[0])
	if h == nil {
		return statusNotFound
	}
	key, ok := read(m, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	if v, ok := s.pseudo(p[0], string(key)); ok {
		return s.give(m, v, p[3], p[4])
	}
	// Several fields of one name read as one value, comma-separated.
	var v []byte
	found := false
	h.Values(string(key), func(value []byte) bool {
		if found {
			v = append(v, ',')
		}
		v, found = append(v, value...), true
		return true
	})
	if !found {
		return statusNotFound
	}
	return s.give(m, v, p[3], p[4])
}

// hostEditHeader sets (replaces), adds or removes a field. Pseudo-header
// fields other than :status cannot be changed.
func hostEditHeader(s *stream, m api.Memory, p []uint64, op string) uint32 {
	h := s.header(p[0])
	if h == nil {
		return statusNotFound
	}
	key, ok := read(m, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	var value []byte
	if op != "remove" {
		if value, ok = read(m, p[3], p[4]); !ok {
			return statusInvalidMemoryAccess
		}
	}
	if len(key) == 0 || !httphead.IsToken(key) && key[0] != ':' || bytes.ContainsAny(value, "\r\n\x00") {
		return statusBadArgument
	}
	if key[0] == ':' {
		if p[0] != mapResponseHeaders {
			return statusBadArgument
		}
		return s.editStatus(string(key), value, op)
	}
	switch op {
	case "set":
		h.Set(string(key), string(value))
	case "add":
		h.Add(key, value)
	case "remove":
		if h.Del(string(key)) == 0 {
			return statusOK
		}
	}
	s.edit(op, key)
	return statusOK
}

// editStatus changes the response status through its pseudo-header.
func (s *stream) editStatus(key string, value []byte, op string) uint32 {
	if key != ":status" || s.resp == nil || op == "remove" {
		return statusBadArgument
	}
	n := 0
	for _, c := range value {
		if c < '0' || c > '9' {
			return statusBadArgument
		}
		n = n*10 + int(c-'0')
	}
	if len(value) != 3 || n < 200 {
		return statusBadArgument
	}
	s.resp.Status = n
	s.edit("set", []byte(":status "+string(value)))
	return statusOK
}

func hostGetHeaderMapSize(s *stream, m api.Memory, p []uint64) uint32 {
	h := s.header(p[0])
	if h == nil {
		return statusNotFound
	}
	s.inst.pairs = s.appendPairs(s.inst.pairs[:0], p[0], h)
	return okIf(m.WriteUint32Le(uint32(p[1]), uint32(len(s.inst.pairs))))
}

// buffer returns the bytes of a buffer type: the configurations, and the
// body during a body callback.
func (s *stream) buffer(typ uint64) ([]byte, bool) {
	if s.inBody && typ == s.bodyOf {
		return s.body, true
	}
	if typ == bufferCallResponseBody && s.call != nil {
		return s.call.body, true
	}
	switch typ {
	case bufferVMConfiguration:
		return nil, true
	case bufferPluginConfiguration:
		if s.f == nil {
			return nil, false
		}
		return []byte(s.f.spec.Config), true
	}
	return nil, false
}

func hostGetBufferBytes(s *stream, m api.Memory, p []uint64) uint32 {
	b, ok := s.buffer(p[0])
	if !ok {
		return statusNotFound
	}
	start, size := p[1], p[2]
	if start > uint64(len(b)) {
		return statusBadArgument
	}
	b = b[start:]
	if size < uint64(len(b)) {
		b = b[:size]
	}
	return s.give(m, b, p[3], p[4])
}

// hostSetBufferBytes changes the body in a body callback, as Envoy does:
// start 0 and size 0 prepend, start 0 and a size of at least the body's
// replace it, a start at or past its end appends.
func hostSetBufferBytes(s *stream, m api.Memory, p []uint64) uint32 {
	if !s.inBody || p[0] != s.bodyOf {
		return statusNotFound
	}
	data, ok := read(m, p[3], p[4])
	if !ok {
		return statusInvalidMemoryAccess
	}
	start, size, n := p[1], p[2], uint64(len(s.body))
	var next []byte
	switch {
	case start == 0 && size == 0:
		next = append(bytes.Clone(data), s.body...)
	case start == 0 && size >= n:
		next = bytes.Clone(data)
	case start >= n:
		next = append(append([]byte(nil), s.body...), data...)
	default:
		return statusBadArgument
	}
	if int64(len(next)) > s.f.spec.BodyLimit {
		return statusBadArgument // the body stays within what the filter may buffer
	}
	s.body = next
	s.edit("set", []byte("body"))
	return statusOK
}

func hostGetBufferStatus(s *stream, m api.Memory, p []uint64) uint32 {
	b, ok := s.buffer(p[0])
	if !ok {
		return statusNotFound
	}
	return okIf(m.WriteUint32Le(uint32(p[1]), uint32(len(b))) && m.WriteUint32Le(uint32(p[2]), 0))
}

// maxLocalBody bounds a local response's body.
const maxLocalBody = 1 << 20

func hostSendLocalResponse(s *stream, m api.Memory, p []uint64) uint32 {
	if s.c == nil || s.phase == "log" || s.trailOf == mapResponseTrailers && s.trail != nil {
		return statusBadArgument // nothing left to answer: the head is sent
	}
	status := int(uint32(p[0]))
	if status < 200 || status > 599 || p[4] > maxLocalBody {
		return statusBadArgument
	}
	details, ok1 := read(m, p[1], p[2])
	body, ok2 := read(m, p[3], p[4])
	hdrs, ok3 := read(m, p[5], p[6])
	if !ok1 || !ok2 || !ok3 {
		return statusInvalidMemoryAccess
	}
	l := &localResponse{status: status, body: bytes.Clone(body), details: string(details)}
	if !parsePairs(hdrs, func(name, value []byte) {
		if httphead.IsToken(name) && !bytes.ContainsAny(value, "\r\n\x00") {
			l.header.Add(name, value)
		}
	}) {
		return statusBadArgument
	}
	if !l.header.Has("Content-Type") && len(l.body) > 0 {
		l.header.AddString("Content-Type", "text/plain; charset=utf-8")
	}
	s.local = l
	return statusOK
}

// hostGetProperty answers the properties Envoy names (request.*, source.*,
// response.code, route_name, plugin_name) and Outpost's own
// (outpost.cache_status, outpost.ja4, outpost.request_id). Numbers are
// 8-byte little-endian integers, as in Envoy.
func hostGetProperty(s *stream, m api.Memory, p []uint64) uint32 {
	path, ok := read(m, p[0], p[1])
	if !ok {
		return statusInvalidMemoryAccess
	}
	v, found := s.property(strings.ReplaceAll(string(bytes.TrimRight(path, "\x00")), "\x00", "."))
	if !found {
		return statusNotFound
	}
	return s.give(m, v, p[2], p[3])
}

func (s *stream) property(path string) ([]byte, bool) {
	switch path {
	case "plugin_name":
		if s.f != nil {
			return []byte(s.f.spec.Name), true
		}
	case "plugin_root_id", "plugin_vm_id":
		return nil, true
	}
	c := s.c
	if c == nil {
		return nil, false
	}
	r := c.Request
	switch path {
	case "request.path":
		return r.Target, true
	case "request.url_path":
		return r.Path, true
	case "request.query":
		return r.Query, r.Query != nil
	case "request.method":
		return r.Method, true
	case "request.host":
		return r.Host, true
	case "request.scheme":
		return r.Scheme, true
	case "request.protocol":
		if r.ProtoMajor == 2 {
			return []byte("HTTP/2"), true
		}
		return []byte("HTTP/1." + strconv.Itoa(r.ProtoMinor)), true
	case "request.id", "outpost.request_id":
		return []byte(c.ID()), true
	case "source.address":
		return []byte(c.Client.String()), true
	case "source.port":
		return binary.LittleEndian.AppendUint64(nil, uint64(c.Client.Port())), true
	case "route_name", "xds.route_name":
		if c.Route != nil {
			return []byte(c.Route.Name), true
		}
	case "response.code":
		if s.resp != nil {
			return binary.LittleEndian.AppendUint64(nil, uint64(s.resp.Status)), true
		}
	case "outpost.cache_status":
		if v := c.Trace.Find("cache"); v != "" {
			return []byte(v), true
		}
	case "outpost.ja4", "connection.ja4":
		return []byte(c.JA4), c.JA4 != ""
	case "connection.tls_version":
		if c.TLS != nil {
			return []byte(tlsVersion(c.TLS.Version)), true
		}
	}
	return nil, false
}

func tlsVersion(v uint16) string {
	switch v {
	case 0x0304:
		return "TLSv1.3"
	case 0x0303:
		return "TLSv1.2"
	}
	return "TLS"
}
