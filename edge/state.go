package edge

import (
	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/proxy"
)

// connState is the edge's per-connection scratch state, kept on the
// proxy.Ctx under stateKey and reused by each request of the connection, so that
// expressions, rules and upstream selection allocate nothing per request.
type connState struct {
	attempt attempt
	attrs   guard.Attrs // the request as rules and expressions see it
	vars    expr.Vars   // expression variables over attrs
	protect protectState
}

var stateKey = proxy.NewKey[*connState]()

// stateOf returns the connection state of c, creating it once.
func stateOf(c *proxy.Ctx) *connState {
	st, ok := stateKey.Get(c)
	if !ok {
		st = &connState{}
		stateKey.Set(c, st)
	}
	return st
}

// exprVars returns the expression variables for c's current request;
// geo answers `country` (nil: always "").
func exprVars(c *proxy.Ctx, geo expr.Geo) *expr.Vars {
	st := stateOf(c)
	st.attrs.Reset(c.Client.Addr(), c.JA4, c.Request)
	st.vars.Geo = geo
	st.vars.Reset(&st.attrs)
	return &st.vars
}
