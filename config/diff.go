package config

import (
	"encoding"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Change is one setting that differs between two configs.
type Change struct {
	Key string // dotted path, as in Error.Key, e.g. routes[2].cache.default_ttl
	Old string // the old value in one-line YAML; "" when the key was absent
	New string // the new value in one-line YAML; "" when the key is gone
}

// Diff lists the settings that differ from old to new, in the order of the
// config's fields, with map keys sorted. It is meant for reload logs and for
// refusing a reload that changes a setting which cannot change live. Both
// configs should be provisioned; derived fields are not compared.
func Diff(old, new *Config) []Change {
	var out []Change
	diffValue(&out, "", reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem())
	return out
}

// Under reports whether the change is to key or to a setting inside it:
// a change to routes[1].cache.default_ttl is under "routes", "routes[1]"
// and "routes[1].cache", not under "route".
func (c Change) Under(key string) bool {
	rest, ok := strings.CutPrefix(c.Key, key)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}

var marshalerType = reflect.TypeFor[encoding.TextMarshaler]()

func diffValue(out *[]Change, key string, a, b reflect.Value) {
	switch {
	case a.Type().Implements(marshalerType) || a.Type() == durationType:
	case a.Kind() == reflect.Pointer:
		if !a.IsNil() && !b.IsNil() {
			diffValue(out, key, a.Elem(), b.Elem())
			return
		}
	case a.Kind() == reflect.Struct:
		for i := range a.NumField() {
			if name, ok := yamlName(a.Type().Field(i)); ok {
				diffValue(out, joinKey(key, name), a.Field(i), b.Field(i))
			}
		}
		return
	case a.Kind() == reflect.Map:
		diffMap(out, key, a, b)
		return
	case a.Kind() == reflect.Slice:
		for i := range max(a.Len(), b.Len()) {
			sub := key + "[" + strconv.Itoa(i) + "]"
			switch {
			case i >= a.Len():
				*out = append(*out, Change{Key: sub, New: oneLine(b.Index(i))})
			case i >= b.Len():
				*out = append(*out, Change{Key: sub, Old: oneLine(a.Index(i))})
			default:
				diffValue(out, sub, a.Index(i), b.Index(i))
			}
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, Change{Key: key, Old: oneLine(a), New: oneLine(b)})
	}
}

func diffMap(out *[]Change, key string, a, b reflect.Value) {
	var names []string
	for _, m := range []reflect.Value{a, b} {
		for _, k := range m.MapKeys() {
			if !slices.Contains(names, k.String()) {
				names = append(names, k.String())
			}
		}
	}
	slices.Sort(names)
	for _, name := range names {
		k := reflect.ValueOf(name)
		av, bv := a.MapIndex(k), b.MapIndex(k)
		sub := joinMapKey(key, name)
		switch {
		case !av.IsValid():
			*out = append(*out, Change{Key: sub, New: oneLine(bv)})
		case !bv.IsValid():
			*out = append(*out, Change{Key: sub, Old: oneLine(av)})
		default:
			diffValue(out, sub, av, bv)
		}
	}
}

// oneLine renders v as single-line (flow style) YAML; a nil pointer is "".
func oneLine(v reflect.Value) string {
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return ""
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return "?"
	}
	flow(&n)
	out, err := yaml.Marshal(&n)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func flow(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "\n") {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		flow(c)
	}
}
