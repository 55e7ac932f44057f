//go:build wasip1

// Package proxywasm is the thin Proxy-Wasm ABI (0.2.1) glue the example
// filters use: the exports a host calls and the few imports they need,
// for the standard Go toolchain (GOOS=wasip1 GOARCH=wasm, built with
// -buildmode=c-shared). A filter sets Filter in its init function.
//
// It is not an SDK: it covers the HTTP context callbacks with one filter
// per module and no asynchronous work. Filters written for a full SDK
// (such as the Proxy-Wasm Go SDK) run on the same host unchanged.
package proxywasm

import "unsafe"

// Action is what an HTTP callback returns.
type Action uint32

const (
	Continue Action = 0
	Pause    Action = 1
)

// Buffer types of the body calls.
const (
	RequestBody  = 0
	ResponseBody = 1
)

// Map types of the header map calls.
const (
	RequestHeaders   = 0
	RequestTrailers  = 1
	ResponseHeaders  = 2
	ResponseTrailers = 3
)

// Filter holds the callbacks of the module's HTTP filter; nil ones
// continue.
var Filter struct {
	Configure       func(config []byte) bool
	RequestHeaders  func(id uint32) Action
	ResponseHeaders func(id uint32) Action
	// The body callbacks run when the host gives the filter the whole
	// body (end of stream); size is its length.
	RequestBody  func(id, size uint32) Action
	ResponseBody func(id, size uint32) Action
	Log          func(id uint32)
	// Tick runs on the root context every period SetTickPeriod asked for.
	Tick func()
	// QueueReady runs on the root context when a queue it registered got
	// an item.
	QueueReady func(queue uint32)
	// RequestTrailers runs after the request body when it has
	// trailers.
	RequestTrailers func(id uint32) Action
	// ResponseTrailers runs after the response body when it has
	// trailers.
	ResponseTrailers func(id uint32) Action
	// CallResponse runs with the response of an HTTP call (Dispatch):
	// headers is its number of header fields (0 when the call failed),
	// size its body's length.
	CallResponse func(token, headers, size uint32)
}

//go:wasmexport proxy_abi_version_0_2_1
func abiVersion() {}

// allocated keeps what the host asked for alive until the next request:
// the host writes into it and hands its address back.
var allocated [][]byte

//go:wasmexport proxy_on_memory_allocate
func onMemoryAllocate(size uint32) *byte {
	b := make([]byte, size+1)
	allocated = append(allocated, b)
	return &b[0]
}

//go:wasmexport proxy_on_context_create
func onContextCreate(id, root uint32) { allocated = allocated[:0] }

//go:wasmexport proxy_on_vm_start
func onVMStart(root, size uint32) bool { return true }

//go:wasmexport proxy_on_configure
func onConfigure(root, size uint32) bool {
	if Filter.Configure == nil {
		return true
	}
	var cfg []byte
	if size > 0 {
		cfg = GetBuffer(7, 0, size)
	}
	return Filter.Configure(cfg)
}

//go:wasmexport proxy_on_request_headers
func onRequestHeaders(id, n, eos uint32) Action {
	if Filter.RequestHeaders == nil {
		return Continue
	}
	return Filter.RequestHeaders(id)
}

//go:wasmexport proxy_on_response_headers
func onResponseHeaders(id, n, eos uint32) Action {
	if Filter.ResponseHeaders == nil {
		return Continue
	}
	return Filter.ResponseHeaders(id)
}

//go:wasmexport proxy_on_request_body
func onRequestBody(id, size, eos uint32) Action {
	if Filter.RequestBody == nil || eos == 0 {
		return Continue
	}
	return Filter.RequestBody(id, size)
}

//go:wasmexport proxy_on_response_body
func onResponseBody(id, size, eos uint32) Action {
	if Filter.ResponseBody == nil || eos == 0 {
		return Continue
	}
	return Filter.ResponseBody(id, size)
}

//go:wasmexport proxy_on_log
func onLog(id uint32) {
	if Filter.Log != nil {
		Filter.Log(id)
	}
}

//go:wasmexport proxy_on_done
func onDone(id uint32) bool { return true }

//go:wasmexport proxy_on_delete
func onDelete(id uint32) {}

//go:wasmexport proxy_on_tick
func onTick(root uint32) {
	if Filter.Tick != nil {
		Filter.Tick()
	}
}

//go:wasmexport proxy_on_queue_ready
func onQueueReady(root, queue uint32) {
	if Filter.QueueReady != nil {
		Filter.QueueReady(queue)
	}
}

//go:wasmexport proxy_on_request_trailers
func onRequestTrailers(id, n uint32) Action {
	if Filter.RequestTrailers == nil {
		return Continue
	}
	return Filter.RequestTrailers(id)
}

//go:wasmexport proxy_on_response_trailers
func onResponseTrailers(id, n uint32) Action {
	if Filter.ResponseTrailers == nil {
		return Continue
	}
	return Filter.ResponseTrailers(id)
}

//go:wasmexport proxy_on_http_call_response
func onHttpCallResponse(root, token, headers, size, trailers uint32) {
	if Filter.CallResponse != nil {
		Filter.CallResponse(token, headers, size)
	}
}

//go:wasmimport env proxy_dispatch_http_call
func proxyDispatchHttpCall(upstream *byte, upstreamSize uint32, headers *byte, headersSize uint32, body *byte, bodySize uint32, trailers *byte, trailersSize uint32, timeout uint32, token *uint32) uint32

//go:wasmimport env proxy_continue_stream
func proxyContinueStream(typ uint32) uint32

// Map and buffer types of an HTTP call's response.
const (
	CallResponseHeaders = 6
	CallResponseBody    = 4
)

// Dispatch sends an HTTP call through the host's upstream: headers are
// name, value pairs with :method, :path and :authority. The response
// comes to Filter.CallResponse with the returned token.
func Dispatch(upstream string, headers []string, body string, timeoutMS uint32) (uint32, bool) {
	h := serializeMap(headers)
	var token uint32
	st := proxyDispatchHttpCall(ptr(upstream), uint32(len(upstream)), &h[0], uint32(len(h)), ptr(body), uint32(len(body)), nil, 0, timeoutMS, &token)
	return token, st == 0
}

// ContinueRequest resumes a request paused for an HTTP call.
func ContinueRequest() { proxyContinueStream(0) }

//go:wasmimport env proxy_register_shared_queue
func proxyRegisterSharedQueue(name *byte, nameSize uint32, id *uint32) uint32

//go:wasmimport env proxy_resolve_shared_queue
func proxyResolveSharedQueue(vm *byte, vmSize uint32, name *byte, nameSize uint32, id *uint32) uint32

//go:wasmimport env proxy_enqueue_shared_queue
func proxyEnqueueSharedQueue(id uint32, value *byte, valueSize uint32) uint32

//go:wasmimport env proxy_dequeue_shared_queue
func proxyDequeueSharedQueue(id uint32, data unsafe.Pointer, size *uint32) uint32

// RegisterQueue registers a shared queue of this module: QueueReady runs
// when it gets an item.
func RegisterQueue(name string) (uint32, bool) {
	var id uint32
	return id, proxyRegisterSharedQueue(ptr(name), uint32(len(name)), &id) == 0
}

// ResolveQueue finds a queue another module (or this one) registered.
func ResolveQueue(name string) (uint32, bool) {
	var id uint32
	return id, proxyResolveSharedQueue(nil, 0, ptr(name), uint32(len(name)), &id) == 0
}

// Enqueue adds an item to a queue.
func Enqueue(id uint32, value string) bool {
	return proxyEnqueueSharedQueue(id, ptr(value), uint32(len(value))) == 0
}

// Dequeue takes the oldest item of a queue (false when it is empty).
func Dequeue(id uint32) (string, bool) {
	var data *byte
	var n uint32
	b, ok := returned(proxyDequeueSharedQueue(id, unsafe.Pointer(&data), &n), data, n)
	return string(b), ok
}

//go:wasmimport env proxy_set_tick_period_milliseconds
func proxySetTickPeriod(ms uint32) uint32

// SetTickPeriod asks the host to call Filter.Tick every ms milliseconds
// (0: never).
func SetTickPeriod(ms uint32) bool { return proxySetTickPeriod(ms) == 0 }

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg *byte, size uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(typ, start, max uint32, data unsafe.Pointer, size *uint32) uint32

//go:wasmimport env proxy_set_buffer_bytes
func proxySetBufferBytes(typ, start, size uint32, data *byte, dataSize uint32) uint32

//go:wasmimport env proxy_get_shared_data
func proxyGetSharedData(key *byte, keySize uint32, data unsafe.Pointer, size *uint32, cas *uint32) uint32

//go:wasmimport env proxy_set_shared_data
func proxySetSharedData(key *byte, keySize uint32, value *byte, valueSize uint32, cas uint32) uint32

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(typ uint32, name *byte, nameSize uint32, id *uint32) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(id uint32, offset int64) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(typ uint32, key *byte, keySize uint32, data unsafe.Pointer, size *uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(typ uint32, key *byte, keySize uint32, value *byte, valueSize uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
func proxyRemoveHeaderMapValue(typ uint32, key *byte, keySize uint32) uint32

//go:wasmimport env proxy_get_property
func proxyGetProperty(path *byte, pathSize uint32, data unsafe.Pointer, size *uint32) uint32

//go:wasmimport env proxy_send_local_response
func proxySendLocalResponse(status uint32, details *byte, detailsSize uint32, body *byte, bodySize uint32, headers *byte, headersSize uint32, grpc int32) uint32

func ptr(s string) *byte {
	if s == "" {
		return nil
	}
	return unsafe.StringData(s)
}

// returned copies what the host returned through (data, size).
func returned(status uint32, data *byte, size uint32) ([]byte, bool) {
	if status != 0 {
		return nil, false
	}
	if size == 0 {
		return []byte{}, true
	}
	return append([]byte(nil), unsafe.Slice(data, size)...), true
}

// Log writes msg to the host's log at level info.
func Log(msg string) { proxyLog(2, ptr(msg), uint32(len(msg))) }

// GetBuffer returns size bytes of a buffer from start.
func GetBuffer(typ, start, size uint32) []byte {
	var data *byte
	var n uint32
	b, _ := returned(proxyGetBufferBytes(typ, start, size, unsafe.Pointer(&data), &n), data, n)
	return b
}

// ReplaceBody replaces the whole body of a body callback.
func ReplaceBody(typ uint32, b []byte) bool {
	var p *byte
	if len(b) > 0 {
		p = &b[0]
	}
	return proxySetBufferBytes(typ, 0, 1<<31-1, p, uint32(len(b))) == 0
}

// SharedData returns the value of a key of the host's shared store and
// its CAS number (0 and false when absent).
func SharedData(key string) ([]byte, uint32, bool) {
	var data *byte
	var n, cas uint32
	b, ok := returned(proxyGetSharedData(ptr(key), uint32(len(key)), unsafe.Pointer(&data), &n, &cas), data, n)
	return b, cas, ok
}

// SetSharedData writes a key of the shared store if its CAS number is
// still cas (0: whatever it is); it reports false on a conflict.
func SetSharedData(key string, value []byte, cas uint32) bool {
	var p *byte
	if len(value) > 0 {
		p = &value[0]
	}
	return proxySetSharedData(ptr(key), uint32(len(key)), p, uint32(len(value)), cas) == 0
}

// DefineCounter defines a counter metric and returns its id.
func DefineCounter(name string) uint32 {
	var id uint32
	proxyDefineMetric(0, ptr(name), uint32(len(name)), &id)
	return id
}

// Increment adds n to a metric.
func Increment(id uint32, n int64) { proxyIncrementMetric(id, n) }

// Header returns the value of a request or response header.
func Header(m uint32, name string) (string, bool) {
	var data *byte
	var n uint32
	b, ok := returned(proxyGetHeaderMapValue(m, ptr(name), uint32(len(name)), unsafe.Pointer(&data), &n), data, n)
	return string(b), ok
}

// SetHeader replaces (or adds) a header.
func SetHeader(m uint32, name, value string) {
	proxyReplaceHeaderMapValue(m, ptr(name), uint32(len(name)), ptr(value), uint32(len(value)))
}

// RemoveHeader removes a header.
func RemoveHeader(m uint32, name string) {
	proxyRemoveHeaderMapValue(m, ptr(name), uint32(len(name)))
}

// Property returns a host property; path segments are joined by NUL.
func Property(path ...string) (string, bool) {
	p := ""
	for i, s := range path {
		if i > 0 {
			p += "\x00"
		}
		p += s
	}
	var data *byte
	var n uint32
	b, ok := returned(proxyGetProperty(ptr(p), uint32(len(p)), unsafe.Pointer(&data), &n), data, n)
	return string(b), ok
}

// SendLocalResponse answers the request with status, body and headers
// (name, value pairs).
func SendLocalResponse(status uint32, body string, headers ...string) {
	m := serializeMap(headers)
	var mp *byte
	if len(m) > 0 {
		mp = &m[0]
	}
	proxySendLocalResponse(status, nil, 0, ptr(body), uint32(len(body)), mp, uint32(len(m)), -1)
}

// serializeMap encodes pairs in the ABI's header map form: the count, each
// name and value length, then each name and value followed by a NUL.
func serializeMap(pairs []string) []byte {
	if len(pairs) == 0 {
		return nil
	}
	b := le32(nil, uint32(len(pairs)/2))
	for _, s := range pairs {
		b = le32(b, uint32(len(s)))
	}
	for _, s := range pairs {
		b = append(append(b, s...), 0)
	}
	return b
}

func le32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}
