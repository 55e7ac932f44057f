package config

import (
	"bytes"
	"encoding"
	"flag"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The configuration reference, docs/config.md, is generated from the doc
// comments of this package's structs and from the defaults that the
// decoder itself gives an absent key (setDefaults, through newValue), so
// neither can drift from the code. TestConfigReference fails when the file
// differs from what the code says; regenerate it with referenceCommand.

var updateReference = flag.Bool("update", false, "rewrite "+referencePath+" from the config structs")

const (
	referencePath    = "../docs/config.md"
	referenceCommand = "go test ./config -run TestConfigReference -update"
)

func TestConfigReference(t *testing.T) {
	docs, err := parseDocs(".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := configReference(docs)
	if err != nil {
		t.Fatalf("%v\nEvery config key needs a doc comment that agrees with its default; then run: %s", err, referenceCommand)
	}
	if *updateReference {
		if err := os.WriteFile(referencePath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v: generate it with: %s", err, referenceCommand)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/config.md is out of date with the config structs (%s): regenerate it with\n\t%s\nand commit it", firstDiff(want, got), referenceCommand)
	}
}

func TestConfigReferenceNeedsADocCommentForEveryKey(t *testing.T) {
	docs, err := parseDocs(".")
	if err != nil {
		t.Fatal(err)
	}
	delete(docs.fields["Passive"], "EjectTime")
	_, err = configReference(docs)
	if err == nil || !strings.Contains(err.Error(), "upstreams.NAME.passive.eject_time: Passive.EjectTime has no doc comment") {
		t.Fatalf("got %v, want an error naming the undocumented key", err)
	}
}

func TestConfigReferenceChecksTheDefaultADocCommentStates(t *testing.T) {
	docs, err := parseDocs(".")
	if err != nil {
		t.Fatal(err)
	}
	docs.fields["MemoryStorage"]["Size"] = "Size is the most bytes held. Default: 128MiB."
	_, err = configReference(docs)
	if err == nil || !strings.Contains(err.Error(), `storage.memory.size: the doc comment says "Default: 128MiB" but the default is 256MiB`) {
		t.Fatalf("got %v, want an error naming the wrong default", err)
	}
}

// firstDiff names the first line where got differs from want.
func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := range min(len(w), len(g)) {
		if w[i] != g[i] {
			return fmt.Sprintf("line %d is now %q", i+1, g[i])
		}
	}
	return fmt.Sprintf("%d lines, now %d", len(w), len(g))
}

// packageDocs holds the doc comments of the package's struct types.
type packageDocs struct {
	types  map[string]string            // type name -> doc comment
	fields map[string]map[string]string // type name -> field name -> doc comment
}

// parseDocs reads the doc comments of the non-test Go files in dir. A
// field's doc is its comment above, else its comment at the end of the
// line.
func parseDocs(dir string) (*packageDocs, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/outpost-edge/outpost/config", doc.PreserveAST)
	if err != nil {
		return nil, err
	}
	docs := &packageDocs{types: map[string]string{}, fields: map[string]map[string]string{}}
	for _, t := range pkg.Types {
		docs.types[t.Name] = t.Doc
		for _, spec := range t.Decl.Specs {
			ts, ok := spec.(*ast.TypeSpec)
			if !ok || ts.Name.Name != t.Name {
				continue
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			fields := map[string]string{}
			for _, f := range st.Fields.List {
				text := f.Doc.Text()
				if text == "" {
					text = f.Comment.Text()
				}
				for _, n := range f.Names {
					fields[n.Name] = text
				}
			}
			docs.fields[t.Name] = fields
		}
	}
	return docs, nil
}

// referenceRow is one key of the reference.
type referenceRow struct {
	key, typ, def, doc string
}

// referenceWriter walks the config structs from Config, following their
// yaml tags as the decoder does.
type referenceWriter struct {
	docs *packageDocs
	rows []referenceRow
	errs []string
}

// configReference returns the Markdown reference of every config key, or
// an error listing the keys without a doc comment and the doc comments
// whose "Default:" disagrees with the code.
func configReference(docs *packageDocs) ([]byte, error) {
	w := &referenceWriter{docs: docs}
	root := &Config{}
	root.setDefaults() // what Parse starts from, so what an absent key means
	w.walk(reflect.ValueOf(root).Elem(), "")
	if len(w.errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(w.errs, "\n"))
	}
	var b bytes.Buffer
	b.WriteString(referenceIntro)
	section := ""
	for _, r := range w.rows {
		top, _, _ := strings.Cut(r.key, ".")
		if top = strings.TrimSuffix(top, "[]"); top != section {
			section = top
			fmt.Fprintf(&b, "\n## `%s`\n\n| key | type | default | description |\n|---|---|---|---|\n", section)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.key, r.typ, r.def, r.doc)
	}
	return b.Bytes(), nil
}

const referenceIntro = `# Configuration reference

<!-- Generated from the doc comments and defaults of package config by
     ` + referenceCommand + `
     Do not edit: change the doc comments in config/ and regenerate. -->

Outpost reads one YAML file: ` + "`outpost run -c FILE`" + ` runs it, ` + "`outpost validate -c FILE`" + `
checks it. Every key is optional: an absent key has the default below,
while an explicit ` + "`0`, `false` or `\"\"`" + ` is kept as written. Unknown keys are
errors. Durations are ` + "`90s`, `1.5s`, `10m`, `2h30m` or days, `1d`" + `; sizes are bytes or carry
a unit, ` + "`64KiB`, `256MiB`, `10MB`" + `; a CIDR may be a single address. Top-level keys
starting with ` + "`x-`" + ` are ignored, a place for YAML anchors.

A key reads as in error messages: ` + "`routes[].cache.default_ttl`" + ` is ` + "`default_ttl`" + ` in
the ` + "`cache`" + ` mapping of any entry of the ` + "`routes`" + ` list, and ` + "`upstreams.NAME`" + ` is an
upstream under a name of your choosing. The defaults of a list entry or a
mapping are those it gets when it is written without that key.
`

// walk adds a row for each config field of struct v, and the rows below it.
func (w *referenceWriter) walk(v reflect.Value, path string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := yamlName(f)
		if !ok {
			continue
		}
		key := joinKey(path, name)
		text := w.docs.fields[t.Name()][f.Name]
		if strings.TrimSpace(text) == "" {
			w.errs = append(w.errs, fmt.Sprintf("%s: %s.%s has no doc comment", key, t.Name(), f.Name))
		}
		w.checkDefault(key, text, v.Field(i))
		w.entry(key, v.Field(i), w.describe(t, name, f.Name, text))
	}
}

// entry adds the row of key, whose default is v, and the rows of the
// keys below it.
func (w *referenceWriter) entry(key string, v reflect.Value, text string) {
	t := v.Type()
	switch {
	case isScalar(t):
		w.add(key, typeName(t), code(format(v)), text)
	case t.Kind() == reflect.Pointer && !v.IsNil():
		w.entry(key, v.Elem(), text)
	case t.Kind() == reflect.Pointer && isScalar(t.Elem()):
		w.add(key, typeName(t.Elem()), "unset", text)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		elem := elemDefaults(t)
		w.add(key, "mapping", "unset", w.withTypeDoc(text, elem.Type()))
		w.walk(elem, key)
	case t.Kind() == reflect.Struct:
		w.add(key, "mapping", "", w.withTypeDoc(text, t))
		w.walk(v, key)
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Map) && isScalar(t.Elem()):
		kind := "list"
		if t.Kind() == reflect.Map {
			kind = "map"
		}
		w.add(key, kind+" of "+typeName(t.Elem())+"s", code(format(v)), text)
	case t.Kind() == reflect.Slice && isStruct(t.Elem()):
		elem := elemDefaults(t.Elem())
		def := code("[]")
		switch v.Len() {
		case 0:
		case 1:
			def = "one entry with the defaults below"
		default:
			def = fmt.Sprintf("%d entries with the defaults below", v.Len())
		}
		w.add(key, "list of mappings", def, w.withTypeDoc(text, elem.Type()))
		w.walk(elem, key+"[]")
	case t.Kind() == reflect.Map && isStruct(t.Elem()):
		elem := elemDefaults(t.Elem())
		w.add(key, "map of mappings", code(format(v)), w.withTypeDoc(text, elem.Type()))
		w.walk(elem, key+".NAME")
	default:
		w.errs = append(w.errs, fmt.Sprintf("%s: no reference form for %s", key, t))
	}
}

func (w *referenceWriter) add(key, typ, def, text string) {
	w.rows = append(w.rows, referenceRow{key: key, typ: typ, def: def, doc: markdown(text)})
}

// elemDefaults returns the value the decoder starts a new t from.
func elemDefaults(t reflect.Type) reflect.Value {
	v := newValue(t).Elem()
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v = newValue(v.Type().Elem())
		}
		v = v.Elem()
	}
	return v
}

// isStruct reports whether t is a struct or a pointer to one.
func isStruct(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}

// isScalar reports whether the decoder reads a t from one YAML scalar.
func isScalar(t reflect.Type) bool {
	if t == durationType || t == prefixType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64, reflect.Float64:
		return true
	}
	return false
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == prefixType:
		return "CIDR"
	case t == reflect.TypeFor[Size]():
		return "size"
	case reflect.PointerTo(t).Implements(unmarshalerType):
		return "string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	}
	return "string"
}

// format writes a scalar, list or map of scalars as it would be written in
// the file.
func format(v reflect.Value) string {
	t := v.Type()
	switch {
	case t == durationType:
		return formatDuration(time.Duration(v.Int()))
	case t == prefixType:
		return v.Interface().(fmt.Stringer).String()
	case t.Implements(reflect.TypeFor[encoding.TextMarshaler]()):
		b, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return orQuotes(string(b))
	}
	switch t.Kind() {
	case reflect.String:
		return orQuotes(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = format(v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case reflect.Map:
		var items []string
		for _, k := range v.MapKeys() {
			items = append(items, k.String()+": "+format(v.MapIndex(k)))
		}
		slices.Sort(items)
		return "{" + strings.Join(items, ", ") + "}"
	}
	return fmt.Sprint(v.Interface())
}

func orQuotes(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// formatDuration writes d as the shortest form the file accepts: "10m"
// rather than "10m0s", "1d" rather than "24h0m0s".
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func code(s string) string { return "`" + s + "`" }

// statedDefault finds the value a doc comment gives after "Default:" or
// "Default (also when ...):": a quoted string, a [list], or a word up to
// the next ";", ",", space or full stop.
var statedDefault = regexp.MustCompile(`Default(?: \([^)]*\))?: ("[^"]*"|\[[^\]]*\]|[^;, ]*?)(?:[;, ]|\.(?:\s|$)|$)`)

// zeroWords are the words with which a doc comment states an empty
// default.
var zeroWords = []string{"none", "any", "off", "empty", "nil", "unset"}

// checkDefault records an error when the doc comment of key states a
// default other than def, the default in the code. Prose that does not
// read as a value of the key's type ("Default: loopback only") is not
// checked; keys that are mappings state their defaults key by key.
func (w *referenceWriter) checkDefault(key, text string, def reflect.Value) {
	m := statedDefault.FindStringSubmatch(strings.Join(strings.Fields(text), " "))
	if m == nil || def.Kind() == reflect.Struct {
		return
	}
	stated := m[1]
	if slices.Contains(zeroWords, stated) {
		if !isEmpty(def) {
			w.errs = append(w.errs, fmt.Sprintf("%s: the doc comment says \"Default: %s\" but the default is %s", key, stated, format(def)))
		}
		return
	}
	if def.Kind() == reflect.Pointer || def.Kind() == reflect.Slice && !isScalar(def.Type().Elem()) {
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(stated), &doc); err != nil || len(doc.Content) == 0 {
		return
	}
	d := &decoder{lines: map[string]int{}, budget: nodeBudget}
	got := newValue(def.Type()).Elem()
	d.decode(doc.Content[0], got, key)
	if len(d.errs) > 0 {
		return
	}
	if !reflect.DeepEqual(got.Interface(), def.Interface()) && !(isEmpty(got) && isEmpty(def)) {
		w.errs = append(w.errs, fmt.Sprintf("%s: the doc comment says \"Default: %s\" but the default is %s", key, stated, format(def)))
	}
}

// isEmpty reports whether v is a zero value or an empty list or map.
func isEmpty(v reflect.Value) bool {
	if v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
		return v.Len() == 0
	}
	return v.IsZero()
}

// describe turns the doc comment of field goName (key name) of struct t
// into one line that speaks of keys: the leading Go name becomes the key,
// and so do the names of the struct's other fields that are written in
// camel case (ProxyProtocolFrom); one-word names (Path, Host) also read as
// plain words and are left alone.
func (w *referenceWriter) describe(t reflect.Type, name, goName, text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if rest, ok := strings.CutPrefix(text, goName); ok && (rest == "" || !isWordByte(rest[0])) {
		text = "`" + name + "`" + rest
	}
	return goNamesToKeys(t, text)
}

// withTypeDoc adds to a field's description the doc comment of its struct
// type t, but its first sentence, which says what the field's doc says.
func (w *referenceWriter) withTypeDoc(text string, t reflect.Type) string {
	typeDoc := strings.Join(strings.Fields(w.docs.types[t.Name()]), " ")
	if _, rest, ok := strings.Cut(typeDoc, ". "); ok {
		return text + " " + goNamesToKeys(t, rest)
	}
	return text
}

var camelCase = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*[a-z0-9][A-Z]`)

// goNamesToKeys replaces the camel-case Go names of t's config fields in text
// by their keys.
func goNamesToKeys(t reflect.Type, text string) string {
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := yamlName(f)
		if !ok || !camelCase.MatchString(f.Name) {
			continue
		}
		re := regexp.MustCompile(`\b` + f.Name + `\b`)
		text = re.ReplaceAllString(text, "`"+name+"`")
	}
	return text
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// markdown escapes text for a table cell: "|" everywhere, and outside code
// spans the characters that would start emphasis or HTML.
func markdown(text string) string {
	var b strings.Builder
	inCode := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '`':
			inCode = !inCode
		case c == '|':
			b.WriteByte('\\')
		case inCode:
		case c == '<':
			b.WriteString("&lt;")
			continue
		case c == '>':
			b.WriteString("&gt;")
			continue
		case c == '*' || c == '_' && (i == 0 || !isWordByte(text[i-1]) || text[i-1] == '_'):
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
