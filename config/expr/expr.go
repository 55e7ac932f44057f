// Package expr compiles the condition expressions of Outpost's config
// (routes[].match.expr, protection.rules[].expr) and evaluates them against
// one request. The language is CEL, the Common Expression Language
// (https://cel.dev), through github.com/google/cel-go: it is typed, has no
// loops or side effects, and every expression ends in bounded time, which is
// what a condition run on every request needs. Writing our own little
// language would have saved a dependency but not the type checker, the
// error positions or the documentation users can already find.
//
// A condition must have type bool; a key (CompileString) has type string.
// Both may read these variables, all of
// type string unless said otherwise; a value the request lacks is "":
//
//	ip          client address, after trusted proxies: "192.0.2.7", "2001:db8::1"
//	method      request method as sent: "GET"
//	host        authority (Host header or :authority), lowercased
//	path        path of the request target, without the query: "/simple/pip/"
//	query       query string without "?": "a=1&b=2"
//	scheme      "http" or "https": how the client reached us
//	headers     map(string, string): request header values by name, in any
//	            case; a missing header reads as "", and `"x-api-key" in
//	            headers` tests presence. A repeated header gives its first value.
//	user_agent  the User-Agent header
//	ja4         JA4 fingerprint of the TLS ClientHello; "" over plain TCP
//	ja4h        JA4H fingerprint of the request head
//	country     ISO 3166-1 alpha-2 code of ip from the GeoIP database; ""
//	            when none is configured or the address is not in it
//
// Besides CEL's standard operators and functions (==, !=, <, &&, ||, !, in,
// ?:, size, startsWith, endsWith, contains, matches with RE2 syntax, int(),
// string(), the macros has/exists/all/filter/map), the string functions of
// cel-go's strings extension (lowerAscii, upperAscii, split, join, replace,
// substring, indexOf, trim...) and two functions that test addresses:
//
//	ip_in(ip, "10.0.0.0/8")                     ip is within the prefix
//	ip_in(ip, ["10.0.0.0/8", "2001:db8::/32"])  ip is within one of them
//
// A single address stands for a /32 or /128; an ip that is not an address
// is in no prefix. Literal prefixes, and literal patterns of matches, are
// parsed once by Compile, not per request.
//
// Cost, per evaluation on a reused Vars (see BenchmarkEval): a comparison
// or ip_in takes 0.1 to 0.3µs and allocates nothing; matches takes
// microseconds over a browser's User-Agent (Go's regexp), so prefer
// contains, startsWith and ip_in, or a rule's user_agent_regex, which is
// run as substring searches when it is a list of words.
//
// Examples:
//
//	method == "POST" && !ip_in(ip, "10.0.0.0/8")
//	path.startsWith("/simple/") && headers["accept"].contains("json")
//	user_agent.matches("(?i)(curl|wget|python-requests)")
//	ja4.startsWith("t13d") && country in ["FR", "BE"]
//	!("authorization" in headers) && query.contains("download=1")
//
// Compile type-checks an expression and reports problems with their line
// and column within it, bad literal prefixes and patterns included. It also
// refuses expressions whose worst-case cost, as CEL estimates it for
// requests within Outpost's header limits, is too high to run per request.
// A compiled Program is read-only and safe for concurrent use; Eval reads
// the request through a Vars, which an engine keeps per connection or
// pools, so that variables are only built when an expression reads them.
package expr

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/decls"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/outpost-edge/outpost/guard"
)

// Limits on what Compile accepts. Config authors are trusted, but an
// expression runs on every request, and Compile also runs on text sent to
// the admin API's validate endpoint.
const (
	// MaxLen is the longest source accepted, in bytes.
	MaxLen = 4096
	// MaxCost is the highest worst-case cost accepted, in CEL's cost
	// units (about one per operation or per ten string bytes scanned).
	MaxCost = 1_000_000
	// maxDepth bounds the nesting of the parse tree.
	maxDepth = 32
)

// ErrInvalid is wrapped by every error Compile returns.
var ErrInvalid = errors.New("invalid expression")

// Issue is one problem found by Compile.
type Issue struct {
	Line, Column int // 1-based position in the source; 0 when unknown
	Reason       string
}

func (i Issue) String() string {
	switch {
	case i.Line > 1:
		return fmt.Sprintf("line %d, column %d: %s", i.Line, i.Column, i.Reason)
	case i.Column > 0:
		return fmt.Sprintf("column %d: %s", i.Column, i.Reason)
	}
	return i.Reason
}

// Error is what Compile returns for an expression it refuses: every
// problem found, in source order.
type Error struct {
	Issues []Issue
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		parts[i] = is.String()
	}
	return strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Error) Unwrap() error { return ErrInvalid }

// Program is a compiled expression. It is read-only and safe for concurrent
// use.
type Program struct {
	src string
	prg cel.Program
}

// String returns the expression's source.
func (p *Program) String() string { return p.src }

// env is the one CEL environment every expression is checked in. It is
// immutable once built; building it takes milliseconds, so it is built on
// first use rather than per Compile.
var env = sync.OnceValues(func() (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Function("ip_in",
			cel.Overload("ip_in_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(ipInPrefix)),
			cel.Overload("ip_in_string_list", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(ipInList)),
			// The checker has proved the argument types; the bindings
			// still check them, and the guards cost a tenth of a call.
			decls.DisableTypeGuards(true)),
		cel.ParserRecursionLimit(maxDepth),
		cel.ParserExpressionSizeLimit(MaxLen),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
	}
	for _, name := range stringVars {
		opts = append(opts, cel.Variable(name, cel.StringType))
	}
	return cel.NewEnv(opts...)
})

// stringVars are the variables of type string.
var stringVars = []string{"ip", "method", "host", "path", "query", "scheme", "user_agent", "ja4", "ja4h", "country"}

// Compile parses and type-checks src, which must be a bool expression (a
// condition), and prepares it for evaluation with Eval.
func Compile(src string) (*Program, error) { return compile(src, cel.BoolType, "a condition") }

// CompileString is Compile for an expression of type string, such as the
// key of a rate limit (`headers["x-api-key"] + "|" + ip`), evaluated with
// AppendString.
func CompileString(src string) (*Program, error) { return compile(src, cel.StringType, "a key") }

func compile(src string, want *cel.Type, what string) (*Program, error) {
	if len(src) > MaxLen {
		return nil, &Error{Issues: []Issue{{Reason: fmt.Sprintf("expression is %d bytes long; at most %d allowed", len(src), MaxLen)}}}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Issues: []Issue{{Reason: "expression is empty"}}}
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("expr: building the CEL environment: %w", err)
	}
	ast, iss := e.Compile(src)
	if iss.Err() != nil {
		return nil, issuesError(iss)
	}
	if t := ast.OutputType(); !t.IsExactType(want) {
		return nil, &Error{Issues: []Issue{{Line: 1, Column: 1, Reason: fmt.Sprintf("expression has type %s; %s must be %s", t, what, want)}}}
	}
	if err := checkLiterals(ast); err != nil {
		return nil, err
	}
	cost, err := e.EstimateCost(ast, requestSizes{})
	if err != nil {
		return nil, &Error{Issues: []Issue{{Reason: "estimating cost: " + err.Error()}}}
	}
	if cost.Max > MaxCost {
		return nil, &Error{Issues: []Issue{{Reason: fmt.Sprintf("expression may cost up to %d per request; at most %d allowed (avoid nested list macros)", cost.Max, MaxCost)}}}
	}
	prg, err := e.Program(ast, cel.EvalOptions(cel.OptOptimize),
		cel.CustomDecoratorV2(planConstants))
	if err != nil {
		return nil, &Error{Issues: []Issue{{Reason: err.Error()}}}
	}
	return &Program{src: src, prg: prg}, nil
}

// MustCompile is Compile for expressions known to be valid, as in tests
// and examples; it panics on an error.
func MustCompile(src string) *Program {
	p, err := Compile(src)
	if err != nil {
		panic("expr: " + err.Error())
	}
	return p
}

func issuesError(iss *cel.Issues) *Error {
	e := &Error{}
	for _, ce := range iss.Errors() {
		is := Issue{Reason: strings.TrimSuffix(ce.Message, " (in container '')")}
		if loc := ce.Location; loc != nil && loc.Line() > 0 {
			is.Line, is.Column = loc.Line(), loc.Column()+1
		}
		e.Issues = append(e.Issues, is)
	}
	return e
}

// Eval runs a condition over the request in v. An error (an overflow, a
// bad regular expression built at run time) is the program's, not the
// request's: callers treat it as false and count it.
func (p *Program) Eval(v *Vars) (bool, error) {
	out, err := p.eval(v)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expr %q: result is %s, not bool", p.src, out.Type())
	}
	return bool(b), nil
}

// AppendString runs a program from CompileString over the request in v and
// appends its result to dst.
func (p *Program) AppendString(dst []byte, v *Vars) ([]byte, error) {
	out, err := p.eval(v)
	if err != nil {
		return dst, err
	}
	s, ok := out.(types.String)
	if !ok {
		return dst, fmt.Errorf("expr %q: result is %s, not string", p.src, out.Type())
	}
	return append(dst, s...), nil
}

func (p *Program) eval(v *Vars) (ref.Val, error) {
	v.used = 0
	out, _, err := p.prg.Eval((*activation)(v))
	if err != nil {
		return nil, fmt.Errorf("expr %q: %w", p.src, err)
	}
	return out, nil
}

// ipInPrefix implements ip_in(string, string) for a prefix computed at run
// time; planIPIn handles literals.
func ipInPrefix(ip, prefix ref.Val) ref.Val {
	s, ok := prefix.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(prefix)
	}
	p, err := parsePrefix(string(s))
	if err != nil {
		return types.NewErr("ip_in: %v", err)
	}
	return types.Bool(inPrefix(ip, p))
}

func ipInList(ip, list ref.Val) ref.Val {
	l, ok := list.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(list)
	}
	n, _ := l.Size().(types.Int)
	for i := types.Int(0); i < n; i++ {
		s, ok := l.Get(i).(types.String)
		if !ok {
			return types.NewErr("ip_in: list element %d is not a string", i)
		}
		p, err := parsePrefix(string(s))
		if err != nil {
			return types.NewErr("ip_in: %v", err)
		}
		if inPrefix(ip, p) {
			return types.True
		}
	}
	return types.False
}

func inPrefix(ip ref.Val, p netip.Prefix) bool {
	s, ok := ip.(types.String)
	if !ok {
		return false
	}
	a, err := netip.ParseAddr(string(s))
	return err == nil && p.Contains(a.Unmap())
}

// parsePrefix reads a CIDR or a single address, as the config file does.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want an address or a prefix such as 10.0.0.0/8", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want an address or a prefix such as 10.0.0.0/8", s)
	}
	return p.Masked(), nil
}

// planConstants replaces calls of ip_in and matches whose second argument
// is a literal by calls that parsed it once, when the program was planned.
// (cel-go's own option for regular expressions, OptimizeRegex, allocates
// twice per call.)
func planConstants(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok || len(call.Args()) != 2 {
		return i, nil
	}
	k, ok := call.Args()[1].(interpreter.InterpretableConst)
	if !ok {
		return i, nil
	}
	switch call.Function() {
	case "ip_in":
		return planIPIn(call, k)
	case "matches":
		pattern, ok := k.Value().(types.String)
		if !ok {
			return i, nil
		}
		re, err := regexp.Compile(string(pattern))
		if err != nil {
			return nil, err
		}
		return &matchesConst{id: call.ID(), s: call.Args()[0], re: re}, nil
	}
	return i, nil
}

// planIPIn makes an ipInConst of a call of ip_in whose prefixes are a
// literal: a string or a list of strings, which cel's Optimize option has
// folded into a constant.
func planIPIn(call interpreter.InterpretableCall, k interpreter.InterpretableConst) (interpreter.InterpretableV2, error) {
	var texts []ref.Val
	switch v := k.Value().(type) {
	case types.String:
		texts = []ref.Val{v}
	case traits.Lister:
		for it := v.Iterator(); it.HasNext() == types.True; {
			texts = append(texts, it.Next())
		}
	default:
		return call, nil
	}
	prefixes := make([]netip.Prefix, len(texts))
	for j, t := range texts {
		s, ok := t.(types.String)
		if !ok {
			return call, nil
		}
		p, err := parsePrefix(string(s))
		if err != nil {
			return nil, fmt.Errorf("ip_in: %w", err)
		}
		prefixes[j] = p
	}
	return &ipInConst{id: call.ID(), ip: call.Args()[0], set: guard.NewPrefixSet(prefixes...)}, nil
}

// ipInConst is ip_in over literal prefixes, compiled into a set.
type ipInConst struct {
	id  int64
	ip  interpreter.InterpretableV2
	set *guard.PrefixSet
}

func (c *ipInConst) ID() int64                                  { return c.id }
func (c *ipInConst) Eval(a interpreter.Activation) ref.Val      { return c.contains(c.ip.Eval(a)) }
func (c *ipInConst) Exec(f *interpreter.ExecutionFrame) ref.Val { return c.contains(c.ip.Exec(f)) }

func (c *ipInConst) contains(ip ref.Val) ref.Val {
	if types.IsUnknownOrError(ip) {
		return ip
	}
	s, ok := ip.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(ip)
	}
	a, err := netip.ParseAddr(string(s))
	return types.Bool(err == nil && c.set.Contains(a))
}

// matchesConst is matches with a literal pattern, compiled.
type matchesConst struct {
	id int64
	s  interpreter.InterpretableV2
	re *regexp.Regexp
}

func (c *matchesConst) ID() int64                                  { return c.id }
func (c *matchesConst) Eval(a interpreter.Activation) ref.Val      { return c.match(c.s.Eval(a)) }
func (c *matchesConst) Exec(f *interpreter.ExecutionFrame) ref.Val { return c.match(c.s.Exec(f)) }

func (c *matchesConst) match(v ref.Val) ref.Val {
	if types.IsUnknownOrError(v) {
		return v
	}
	s, ok := v.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	return types.Bool(c.re.MatchString(string(s)))
}

// checkLiterals reports, with their position, literal prefixes of ip_in
// and literal patterns of matches that do not parse.
func checkLiterals(ast *cel.Ast) error {
	native := ast.NativeRep()
	e := &Error{}
	check := func(arg celast.Expr, fn string, parse func(string) error) {
		s, ok := arg.AsLiteral().(types.String)
		if arg.Kind() != celast.LiteralKind || !ok {
			return
		}
		if err := parse(string(s)); err != nil {
			loc := native.SourceInfo().GetStartLocation(arg.ID())
			e.Issues = append(e.Issues, Issue{Line: loc.Line(), Column: loc.Column() + 1, Reason: fn + ": " + err.Error()})
		}
	}
	parsers := map[string]func(string) error{
		"ip_in":   func(s string) error { _, err := parsePrefix(s); return err },
		"matches": func(s string) error { _, err := regexp.Compile(s); return err },
	}
	matcher := func(n celast.NavigableExpr) bool {
		return n.Kind() == celast.CallKind && parsers[n.AsCall().FunctionName()] != nil
	}
	for _, call := range celast.MatchDescendants(celast.NavigateAST(native), matcher) {
		fn, args := call.AsCall().FunctionName(), call.AsCall().Args()
		if len(args) == 0 {
			continue
		}
		last := args[len(args)-1] // the pattern, whether matches is called as a method or not
		check(last, fn, parsers[fn])
		if last.Kind() == celast.ListKind {
			for _, el := range last.AsList().Elements() {
				check(el, fn, parsers[fn])
			}
		}
	}
	if len(e.Issues) > 0 {
		return e
	}
	return nil
}

// requestSizes tells CEL's cost estimator how large request values can
// get, so that string scans and header iteration have a bound.
type requestSizes struct{}

const (
	maxValueLen = 64 << 10 // limits.max_header_bytes at most 1MiB, typically 64KiB
	maxHeaders  = 10000    // limits.max_headers at most
)

func (requestSizes) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	size := checker.SizeEstimate{Max: maxValueLen}
	if path[0] == "headers" && len(path) == 1 {
		size.Max = maxHeaders
	}
	return &size
}

func (requestSizes) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	if function == "ip_in" {
		return &checker.CallEstimate{CostEstimate: checker.FixedCostEstimate(10)}
	}
	return nil
}

// Matcher returns p as a guard.Rule's Match function. Each call borrows a
// Vars from a pool, so it allocates nothing in steady state beyond what
// Eval does. country is looked up through geo (nil: always ""); an
// evaluation error counts as no match and is passed to onError (nil:
// ignored).
func (p *Program) Matcher(geo Geo, onError func(error)) func(*guard.Attrs) bool {
	pool := &sync.Pool{New: func() any { return &Vars{Geo: geo} }}
	return func(a *guard.Attrs) bool {
		v := pool.Get().(*Vars)
		v.Reset(a)
		ok, err := p.Eval(v)
		v.Reset(nil)
		pool.Put(v)
		if err != nil && onError != nil {
			onError(err)
		}
		return ok
	}
}
