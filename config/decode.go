package config

import (
	"encoding"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a config file. It prints as
// "file:line: key: reason", leaving out the parts that are unknown.
type Error struct {
	File   string // path of the config file; "" when built in Go
	Line   int    // 1-based line of the key in File; 0 when unknown
	Key    string // dotted path of the key, e.g. routes[2].cache.default_ttl
	Reason string // what is wrong, for a human
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if e.File == "" {
			b.WriteString("line ")
		} else {
			b.WriteString(":")
		}
		b.WriteString(strconv.Itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// nodeBudget bounds the nodes one document may make the decoder visit, so
// that aliases and merge keys cannot expand into exponential work.
const nodeBudget = 1 << 20

// decoder lays a YAML node tree onto Go values by reflection, following
// their `yaml` struct tags. Values are expected to hold their defaults
// already; null leaves a value as it is.
type decoder struct {
	file   string
	lines  map[string]int // dotted key -> line, for errors found later
	errs   []*Error
	budget int // nodes left to visit
	merges int // merge keys being applied, nested
}

// maxMerges bounds nested merge keys; an anchor that merges itself would
// otherwise recurse forever.
const maxMerges = 32

var (
	durationType    = reflect.TypeFor[time.Duration]()
	prefixType      = reflect.TypeFor[netip.Prefix]()
	unmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// defaulter is implemented by config types whose zero value is not their
// default; the decoder calls it on each list element, map value and
// pointer it creates, before decoding into it.
type defaulter interface{ setDefaults() }

// maxErrors bounds the errors one document reports.
const maxErrors = 100

// errorf records an error, unless the same one was already recorded (an
// alias used many times would repeat it) or there are too many.
func (d *decoder) errorf(line int, key, format string, args ...any) {
	e := &Error{File: d.file, Line: line, Key: key, Reason: fmt.Sprintf(format, args...)}
	switch {
	case len(d.errs) > maxErrors || slices.ContainsFunc(d.errs, func(old *Error) bool { return *old == *e }):
		return
	case len(d.errs) == maxErrors:
		e.Reason = "too many errors; stopping"
	}
	d.errs = append(d.errs, e)
}

// spend takes one node from the budget and reports whether any was left.
func (d *decoder) spend(n *yaml.Node, key string) bool {
	d.budget--
	if d.budget == -1 {
		d.errorf(n.Line, key, "document too large or too deeply aliased")
	}
	return d.budget >= 0
}

// document decodes the top-level node into c.
func (d *decoder) document(root *yaml.Node, c *Config) {
	if root.Kind != yaml.MappingNode && !isNull(root) {
		d.errorf(root.Line, "", "expected a mapping at the top level, got %s", describe(root))
		return
	}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, key string) {
	if !d.spend(n, key) {
		return
	}
	n = deref(n)
	if isNull(n) {
		return
	}
	if v.Type() == durationType || v.Type() == prefixType || v.Addr().Type().Implements(unmarshalerType) {
		d.text(n, v, key)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(newValue(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), key)
	case reflect.Struct:
		d.structure(n, v, key)
	case reflect.Map:
		d.mapping(n, v, key)
	case reflect.Slice:
		d.sequence(n, v, key)
	default:
		d.scalar(n, v, key)
	}
}

// newValue returns a pointer to a new T holding T's defaults.
func newValue(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if def, ok := p.Interface().(defaulter); ok {
		def.setDefaults()
	}
	return p
}

// text decodes a scalar through the type's own parser.
func (d *decoder) text(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, key, "expected a string, got %s", describe(n))
		return
	}
	var err error
	switch v.Type() {
	case durationType:
		var dur time.Duration
		dur, err = parseDuration(n.Value)
		if err == nil {
			v.SetInt(int64(dur))
		}
	case prefixType:
		var p netip.Prefix
		p, err = parsePrefix(n.Value)
		if err == nil {
			v.Set(reflect.ValueOf(p))
		}
	default:
		err = v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value))
	}
	if err != nil {
		d.errorf(n.Line, key, "%v", err)
	}
}

// structure decodes a mapping into a struct, field by `yaml` tag.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, key, "expected a mapping, got %s", describe(n))
		return
	}
	fields := map[string]int{}
	var names []string
	for i := range v.NumField() {
		if name, ok := yamlName(v.Type().Field(i)); ok {
			fields[name] = i
			names = append(names, name)
		}
	}
	d.pairs(n, key, func(k, val *yaml.Node) {
		sub := joinKey(key, k.Value)
		i, ok := fields[k.Value]
		if !ok && key == "" && strings.HasPrefix(k.Value, "x-") {
			return // top-level extension key, a place to put YAML anchors
		}
		if !ok {
			d.errorf(k.Line, sub, "unknown key%s", suggest(k.Value, names))
			return
		}
		d.lines[sub] = k.Line
		d.decode(val, v.Field(i), sub)
	})
}

// yamlName returns the key of a struct field in the file, and false for
// fields that are not config (unexported, untagged or tagged "-").
func yamlName(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name, f.IsExported() && name != "" && name != "-"
}

// mapping decodes a mapping into a map with string keys, replacing what the
// map held.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, key, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	d.pairs(n, key, func(k, val *yaml.Node) {
		sub := joinMapKey(key, k.Value)
		d.lines[sub] = k.Line
		elem := newValue(v.Type().Elem()).Elem()
		d.decode(val, elem, sub)
		m.SetMapIndex(reflect.ValueOf(k.Value), elem)
	})
	v.Set(m)
}

// pairs calls fn for each key and value of mapping n, merged mappings
// ("<<") first so that the mapping's own keys override them. A key that is
// not a scalar, or that appears twice, is an error.
func (d *decoder) pairs(n *yaml.Node, key string, fn func(k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			d.merge(n.Content[i+1], key, fn)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.spend(k, key) {
			return
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, key, "a key must be a string, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, joinKey(key, k.Value), "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		fn(k, val)
	}
}

// merge applies a merge key's value: a mapping, or a list of mappings of
// which the earlier ones win.
func (d *decoder) merge(val *yaml.Node, key string, fn func(k, v *yaml.Node)) {
	if d.merges >= maxMerges {
		d.errorf(val.Line, key, "merge keys (<<) nested too deeply or referring to themselves")
		return
	}
	d.merges++
	defer func() { d.merges-- }()
	val = deref(val)
	maps := []*yaml.Node{val}
	if val.Kind == yaml.SequenceNode {
		maps = val.Content
	}
	for i := len(maps) - 1; i >= 0; i-- {
		m := deref(maps[i])
		if !d.spend(m, key) {
			return
		}
		if m.Kind != yaml.MappingNode {
			d.errorf(m.Line, key, "a merge key (<<) needs a mapping or a list of mappings, got %s", describe(m))
			continue
		}
		d.pairs(m, key, fn)
	}
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// sequence decodes a list into a slice, replacing what the slice held.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, key, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		sub := key + "[" + strconv.Itoa(i) + "]"
		d.lines[sub] = item.Line
		s.Index(i).Set(newValue(v.Type().Elem()).Elem())
		d.decode(item, s.Index(i), sub)
	}
	v.Set(s)
}

// scalar decodes a string, bool, integer or float. Numbers must not be
// negative: no setting of Outpost has a meaning for one.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, key, "expected %s, got %s", kindName(v.Kind()), describe(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		switch n.Value {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.errorf(n.Line, key, "expected true or false, got %q", n.Value)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(n.Value, 0, v.Type().Bits())
		switch {
		case err != nil:
			d.errorf(n.Line, key, "expected an integer, got %q", n.Value)
		case i < 0:
			d.errorf(n.Line, key, "must not be negative, got %d", i)
		default:
			v.SetInt(i)
		}
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		switch {
		case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			d.errorf(n.Line, key, "expected a number, got %q", n.Value)
		case f < 0:
			d.errorf(n.Line, key, "must not be negative, got %v", n.Value)
		default:
			v.SetFloat(f)
		}
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64:
		return "a number"
	}
	return "a string"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names a node's kind for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinMapKey is joinKey for a user-chosen map key, which is quoted
// (upstreams["a.b"]) when it would not read as one path element.
func joinMapKey(parent, name string) string {
	if plainKey.MatchString(name) {
		return joinKey(parent, name)
	}
	return parent + "[" + strconv.Quote(name) + "]"
}

// suggest returns ` (did you mean "x"?)` for the closest of names within
// two edits of got, or "".
func suggest(got string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(got, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between short strings a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
