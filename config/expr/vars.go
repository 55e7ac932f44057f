package expr

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"unsafe"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/httphead"
)

// Geo finds the country of an address, for the country variable.
type Geo interface {
	// Country returns the ISO 3166-1 alpha-2 code of ip, or "" when
	// unknown. It must be safe for concurrent use.
	Country(ip netip.Addr) string
}

// Vars is what an expression reads for one request: the guard's Attrs
// (client address, JA4, request head, and JA4H computed once for rules and
// expressions alike) and, through Geo, the country. Values are built when an
// expression first reads them. String values are views of the request's
// own bytes, valid while Eval runs, so a Vars must be Reset to the next
// request only once evaluation is over.
//
// Keep a Vars per connection or in a pool: reused, it allocates nothing
// itself. A Vars belongs to one request at a time and must not be copied.
type Vars struct {
	// Geo looks up country; nil means country is always "". It is kept
	// across Reset.
	Geo Geo

	attrs   *guard.Attrs
	ip      []byte // text of attrs.IP, once built
	haveIP  bool
	country string
	haveGeo bool
	headers headerMap
	boxes   [8]types.String // see str
	used    int             // boxes used by the current Eval
}

// Reset points v at the request a describes, keeping v's storage and Geo.
// a may be nil, which makes every variable "".
func (v *Vars) Reset(a *guard.Attrs) {
	v.attrs, v.ip, v.haveIP, v.haveGeo, v.country = a, v.ip[:0], false, false, ""
	v.headers.v = v
	// boxes need no clearing: each Eval writes one before using it.
}

// activation is Vars as cel-go's interpreter.Activation, a separate type so
// that Vars does not export the interpreter's methods.
type activation Vars

// Boxed values of the commonest short strings, so that resolving them
// does not box a new string.
var (
	emptyVal = ref.Val(types.String(""))
	interned = []ref.Val{types.String("GET"), types.String("HEAD"), types.String("POST"),
		types.String("http"), types.String("https"), types.String("/")}
)

// str returns b as a CEL string without copying it. The view is only used
// during Eval, while the request bytes it points into are unchanged.
//
// Boxing a string into an interface allocates its 16-byte header, once per
// variable read. To avoid that, the header is kept in one of v's boxes and
// the interface made to point at it; once an Eval has used every box (a
// macro reading headers in a loop), further values are boxed the usual way.
// A box is only rewritten by a later Eval, when values of the previous one
// are no longer held: programs return a bool, or a string that
// AppendString copies.
func (v *Vars) str(b []byte) ref.Val {
	if len(b) == 0 {
		return emptyVal
	}
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if len(s) <= 5 {
		for _, iv := range interned {
			if string(iv.(types.String)) == s {
				return iv
			}
		}
	}
	if v.used == len(v.boxes) {
		return types.String(s)
	}
	box := &v.boxes[v.used]
	v.used++
	*box = types.String(s)
	val := emptyVal // a types.String interface; only its data word changes
	(*iface)(unsafe.Pointer(&val)).data = unsafe.Pointer(box)
	return val
}

// iface is the layout of a non-empty interface value such as ref.Val.
type iface struct {
	tab  unsafe.Pointer
	data unsafe.Pointer
}

// ResolveName returns the value of the variable name.
func (a *activation) ResolveName(name string) (any, bool) {
	v := (*Vars)(a)
	var req *httphead.Request
	if v.attrs != nil {
		req = v.attrs.Request
	}
	if req == nil && name != "ip" && name != "ja4" && name != "country" {
		if name == "headers" {
			return &v.headers, true
		}
		return emptyVal, true
	}
	switch name {
	case "ip":
		return v.str(v.ipText()), true
	case "method":
		return v.str(req.Method), true
	case "host":
		return v.str(req.Host), true
	case "path":
		return v.str(req.Path), true
	case "query":
		return v.str(req.Query), true
	case "scheme":
		return v.str(req.Scheme), true
	case "headers":
		return &v.headers, true
	case "user_agent":
		return v.str(v.attrs.UserAgent()), true
	case "ja4":
		if v.attrs == nil {
			return emptyVal, true
		}
		return v.str(unsafe.Slice(unsafe.StringData(v.attrs.JA4), len(v.attrs.JA4))), true
	case "ja4h":
		return v.str(v.attrs.JA4H()), true
	case "country":
		return v.str(v.countryText()), true
	}
	return nil, false
}

// Parent returns nil: there is no enclosing scope.
func (a *activation) Parent() interpreter.Activation { return nil }

func (v *Vars) ipText() []byte {
	if !v.haveIP && v.attrs != nil && v.attrs.IP.IsValid() {
		v.ip = v.attrs.IP.Unmap().AppendTo(v.ip[:0])
	}
	v.haveIP = true
	return v.ip
}

func (v *Vars) countryText() []byte {
	if !v.haveGeo && v.Geo != nil && v.attrs != nil && v.attrs.IP.IsValid() {
		v.country = v.Geo.Country(v.attrs.IP.Unmap())
	}
	v.haveGeo = true
	return unsafe.Slice(unsafe.StringData(v.country), len(v.country))
}

// headerMap is the headers variable: a read-only CEL map over the request
// head that looks fields up by name as it is asked, instead of copying the
// head into a Go map per request.
type headerMap struct{ v *Vars }

var (
	_ traits.Indexer     = (*headerMap)(nil)
	_ traits.Container   = (*headerMap)(nil)
	_ traits.FieldTester = (*headerMap)(nil)
	_ traits.Sizer       = (*headerMap)(nil)
	_ traits.Iterable    = (*headerMap)(nil)
)

func (h *headerMap) header() *httphead.Header {
	if h.v == nil || h.v.attrs == nil || h.v.attrs.Request == nil {
		return nil
	}
	return &h.v.attrs.Request.Header
}

// Get returns the first value of the header named by index, "" when absent.
func (h *headerMap) Get(index ref.Val) ref.Val {
	name, ok := index.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(index)
	}
	hd := h.header()
	if hd == nil {
		return emptyVal
	}
	return h.v.str(hd.Peek(string(name)))
}

// Contains reports whether the header named by index is present.
func (h *headerMap) Contains(index ref.Val) ref.Val {
	name, ok := index.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(index)
	}
	hd := h.header()
	return types.Bool(hd != nil && hd.Has(string(name)))
}

// IsSet is Contains, for has(headers.name).
func (h *headerMap) IsSet(field ref.Val) ref.Val { return h.Contains(field) }

// Size returns the number of header fields, repeated ones included.
func (h *headerMap) Size() ref.Val {
	hd := h.header()
	if hd == nil {
		return types.IntZero
	}
	return types.Int(hd.Len())
}

// Iterator yields the lowercased names of the fields, once each. It
// allocates; the macros that use it (headers.exists(...)) are rare.
func (h *headerMap) Iterator() traits.Iterator {
	var names []ref.Val
	if hd := h.header(); hd != nil {
		seen := map[string]bool{}
		for i := range hd.Len() {
			name, _ := hd.Field(i)
			n := strings.ToLower(string(name))
			if !seen[n] {
				seen[n] = true
				names = append(names, types.String(n))
			}
		}
	}
	return types.NewRefValList(types.DefaultTypeAdapter, names).Iterator()
}

// ConvertToNative copies the headers into a map[string]string, first
// value of each name.
func (h *headerMap) ConvertToNative(t reflect.Type) (any, error) {
	m := map[string]string{}
	if hd := h.header(); hd != nil {
		for i := hd.Len() - 1; i >= 0; i-- {
			name, value := hd.Field(i)
			m[strings.ToLower(string(name))] = string(value)
		}
	}
	if reflect.TypeOf(m).AssignableTo(t) {
		return m, nil
	}
	return nil, fmt.Errorf("expr: headers cannot become %v", t)
}

// ConvertToType supports type(headers) and conversion to map.
func (h *headerMap) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return h
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from headers to %s", t.TypeName())
}

// Equal holds only for the same map: comparing header maps has no use.
func (h *headerMap) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(h)) }

// Type is map.
func (h *headerMap) Type() ref.Type { return types.MapType }

// Value returns h itself.
func (h *headerMap) Value() any { return h }
