package fiddle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
)

// Assertions are CEL, as the config's expressions are. They see the step's
// result as JSON shows it: response, origin_fetches, events, request and
// purged (a purge step's object count).
var assertEnv = sync.OnceValues(func() (*cel.Env, error) {
	dynMap := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("response", dynMap),
		cel.Variable("request", dynMap),
		cel.Variable("origin_fetches", cel.ListType(dynMap)),
		cel.Variable("events", cel.ListType(dynMap)),
		cel.Variable("purged", cel.IntType),
	)
})

// check evaluates a step's assertions against its result.
func check(exprs []string, res *Result) []Assertion {
	out := make([]Assertion, 0, len(exprs))
	if len(exprs) == 0 {
		return out
	}
	vars, err := assertVars(res)
	for _, src := range exprs {
		a := Assertion{Expr: src}
		if err == nil {
			a.OK, err = eval(src, vars)
		}
		if err != nil {
			a.Error = err.Error()
		}
		out = append(out, a)
		err = nil
	}
	return out
}

func eval(src string, vars map[string]any) (bool, error) {
	env, err := assertEnv()
	if err != nil {
		return false, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return false, iss.Err()
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return false, fmt.Errorf("an assertion must be a condition (bool), not %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.CostLimit(1_000_000))
	if err != nil {
		return false, err
	}
	v, _, err := prg.Eval(vars)
	if err != nil {
		return false, err
	}
	ok, isBool := v.Value().(bool)
	if !isBool {
		return false, fmt.Errorf("the assertion gave %v, not true or false", v.Value())
	}
	return ok, nil
}

// assertVars is the result as JSON values, with whole numbers as ints so
// that response.status == 200 compares as written.
func assertVars(res *Result) (map[string]any, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	v := ints(m).(map[string]any)
	if _, ok := v["purged"]; !ok {
		v["purged"] = int64(0)
	}
	return v, nil
}

func ints(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = ints(e)
		}
	case []any:
		for i, e := range x {
			x[i] = ints(e)
		}
	}
	return v
}
