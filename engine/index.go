package engine

import (
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/reservist/reservist/rules"
)

// The index lets a callback skip rules that cannot match without running them.
//
// Most rules start with `attribute == "constant"` (or `attribute in ["a", "b"]`). When the
// first conjunct of a rule's `when` has that shape, the engine reads the attribute once per
// callback and only runs the rules whose constant equals it. This is exact, not a heuristic:
// `a && b` evaluates a first and stops when it is false, and comparing a value with a string
// or boolean constant cannot fail at run time, so a skipped rule would have evaluated to false
// with no error. Where that is not certain — the path cannot be read without an error, or an
// `in` meets a value that is not a string — the rule is run as written. First-match order is
// kept by walking candidates in rule order.

// index groups rules by the path their first conjunct reads.
type index struct {
	paths  []*pathIndex
	other  []int     // rules with no indexable first conjunct, in order
	guards [][]guard // each rule's leading comparisons, for rejects
}

// guard is one of the comparisons a rule's `when` starts with: path == constant, path in
// [constants] or path != nil.
type guard struct {
	path   path
	kind   comparison
	consts []any
}

// pathIndex is every rule whose first conjunct compares one path with constants.
type pathIndex struct {
	path    path
	byValue map[any][]int // constant → rules (in order) that compare with it
	all     []int         // every rule on this path, in order
	in      []int         // rules whose comparison is `in`, in order: they take only string values
	notNil  []int         // rules that start with path != nil
}

// path is a chain of member accesses from a root of the environment.
type path struct {
	root     string   // "task", "worker", "params"
	keys     []string // after the root, e.g. ["attributes", "queue"]
	optional []bool   // whether keys[i] was reached with ?.
}

func (p path) String() string {
	return p.root + "." + strings.Join(p.keys, ".")
}

func buildIndex(set *rules.Set) *index {
	ix := &index{guards: make([][]guard, len(set.Rules))}
	byPath := map[string]*pathIndex{}
	for i, r := range set.Rules {
		for _, c := range conjuncts(r.Program.Node()) {
			p, consts, kind, ok := comparisonOf(c, set.Vars)
			if !ok {
				break
			}
			ix.guards[i] = append(ix.guards[i], guard{path: p, kind: kind, consts: consts})
		}
		p, consts, kind, ok := indexable(r.Program.Node(), set.Vars)
		if !ok {
			ix.other = append(ix.other, i)
			continue
		}
		pi := byPath[p.String()]
		if pi == nil {
			pi = &pathIndex{path: p, byValue: map[any][]int{}}
			byPath[p.String()] = pi
			ix.paths = append(ix.paths, pi)
		}
		pi.all = append(pi.all, i)
		switch kind {
		case compareIn:
			pi.in = append(pi.in, i)
		case compareNotNil:
			pi.notNil = append(pi.notNil, i)
		}
		for _, c := range consts {
			if rs := pi.byValue[c]; len(rs) == 0 || rs[len(rs)-1] != i {
				pi.byValue[c] = append(rs, i)
			}
		}
	}
	return ix
}

// How a rule's first conjunct compares its path.
type comparison int

const (
	compareEqual  comparison = iota // path == constant
	compareIn                       // path in [constants]
	compareNotNil                   // path != nil
)

// indexable reports whether a `when` starts with path == constant, path in [constants] (string
// or boolean constants) or path != nil, and returns the path, the constants and the kind.
func indexable(n ast.Node, vars map[string]any) (p path, consts []any, kind comparison, ok bool) {
	return comparisonOf(conjuncts(n)[0], vars)
}

// conjuncts splits a `when` at its top-level &&s, in the order expr evaluates them.
func conjuncts(n ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		return append(conjuncts(b.Left), conjuncts(b.Right)...)
	}
	return []ast.Node{n}
}

// comparisonOf reports whether n is path == constant, path in [constants] (string or
// boolean constants) or path != nil, and returns the path, the constants and the kind.
func comparisonOf(n ast.Node, vars map[string]any) (p path, consts []any, kind comparison, ok bool) {
	b, isBin := n.(*ast.BinaryNode)
	if !isBin {
		return p, nil, 0, false
	}
	switch b.Operator {
	case "==":
		if p, ok = pathOf(b.Left); ok {
			c, cok := constant(b.Right, vars)
			return p, []any{c}, compareEqual, cok
		}
		if p, ok = pathOf(b.Right); ok {
			c, cok := constant(b.Left, vars)
			return p, []any{c}, compareEqual, cok
		}
	case "!=":
		// nil != nil is false and cannot fail, so a nil value skips the rule.
		if _, isNil := b.Right.(*ast.NilNode); isNil {
			p, ok = pathOf(b.Left)
			return p, nil, compareNotNil, ok
		}
	case "in":
		p, ok = pathOf(b.Left)
		if !ok {
			return p, nil, 0, false
		}
		switch set := b.Right.(type) {
		case *ast.ConstantNode:
			m, isMap := set.Value.(map[string]struct{})
			if !isMap {
				return p, nil, 0, false
			}
			for k := range m {
				consts = append(consts, k)
			}
		case *ast.ArrayNode:
			for _, e := range set.Nodes {
				s, isStr := e.(*ast.StringNode)
				if !isStr {
					return p, nil, 0, false
				}
				consts = append(consts, s.Value)
			}
		default:
			return p, nil, 0, false
		}
		return p, consts, compareIn, true
	}
	return p, nil, 0, false
}

// constant returns the value of a string or boolean literal, or of vars.NAME holding one.
func constant(n ast.Node, vars map[string]any) (any, bool) {
	switch c := n.(type) {
	case *ast.StringNode:
		return c.Value, true
	case *ast.BoolNode:
		return c.Value, true
	case *ast.MemberNode:
		id, ok := c.Node.(*ast.IdentifierNode)
		key, kok := c.Property.(*ast.StringNode)
		if !ok || !kok || id.Value != "vars" || c.Optional {
			return nil, false
		}
		switch v := vars[key.Value].(type) {
		case string, bool:
			return v, true
		}
	}
	return nil, false
}

// pathOf reads task.…, worker.… or params.X member chains with constant keys.
func pathOf(n ast.Node) (path, bool) {
	if c, ok := n.(*ast.ChainNode); ok {
		n = c.Node
	}
	var keys []string
	var optional []bool
	for {
		switch m := n.(type) {
		case *ast.MemberNode:
			key, ok := m.Property.(*ast.StringNode)
			if !ok || m.Method {
				return path{}, false
			}
			keys = append(keys, key.Value)
			optional = append(optional, m.Optional)
			n = m.Node
			continue
		case *ast.IdentifierNode:
			slices.Reverse(keys)
			slices.Reverse(optional)
			p := path{root: m.Value, keys: keys, optional: optional}
			return p, p.supported()
		}
		return path{}, false
	}
}

// supported reports whether read can follow the path exactly as expr would.
func (p path) supported() bool {
	switch p.root {
	case "task":
		if len(p.keys) == 1 {
			return p.keys[0] == "sid" || p.keys[0] == "queue_sid"
		}
		return len(p.keys) >= 2 && p.keys[0] == "attributes"
	case "worker":
		if len(p.keys) == 1 {
			return p.keys[0] == "sid"
		}
		return len(p.keys) >= 2 && p.keys[0] == "attributes"
	case "params":
		return len(p.keys) == 1
	}
	return false
}

// read returns the path's value in env, and false where expr would fail reading it (a
// missing object reached without ?.) or where it would be something other than a plain
// JSON value.
func (p path) read(env *rules.Env) (any, bool) {
	switch p.root {
	case "params":
		// expr reads a missing key of a map[string]string as "".
		return env.Params[p.keys[0]], true
	case "task":
		switch p.keys[0] {
		case "sid":
			return env.Task.Sid, true
		case "queue_sid":
			return env.Task.QueueSid, true
		}
		return walk(env.Task.Attributes, p.keys[1:], p.optional[1:])
	case "worker":
		if p.keys[0] == "sid" {
			return env.Worker.Sid, true
		}
		return walk(env.Worker.Attributes, p.keys[1:], p.optional[1:])
	}
	return nil, false
}

func walk(m map[string]any, keys []string, optional []bool) (any, bool) {
	var cur any = m
	for i, k := range keys {
		switch x := cur.(type) {
		case map[string]any:
			cur = x[k]
		case nil:
			if !optional[i] {
				return nil, false // expr: cannot fetch k from nil
			}
			// expr's ?. stops the whole chain at nil.
			return nil, true
		default:
			return nil, false // expr would fetch from a list, string, number: leave it to expr
		}
	}
	return cur, true
}

// candidates returns, in rule order, the rules a callback must run: every rule whose indexed
// comparison can hold, and every rule that is not indexed. buf and lists are reused.
func (ix *index) candidates(env *rules.Env, buf []int, lists [][]int) ([]int, [][]int) {
	lists = lists[:0]
	if len(ix.other) > 0 {
		lists = append(lists, ix.other)
	}
	for _, pi := range ix.paths {
		v, ok := pi.path.read(env)
		if !ok {
			lists = append(lists, pi.all)
			continue
		}
		if v != nil && len(pi.notNil) > 0 {
			lists = append(lists, pi.notNil)
		}
		switch v.(type) {
		case string:
			if l := pi.byValue[v]; len(l) > 0 {
				lists = append(lists, l)
			}
		case bool:
			// `in` takes only strings in its set: a boolean value is an error for expr.
			if l := pi.byValue[v]; len(l) > 0 {
				lists = append(lists, l)
			}
			if len(pi.in) > 0 {
				lists = append(lists, pi.in)
			}
		default:
			// nil or a number equals no string or boolean constant; `in` may fail on it.
			if len(pi.in) > 0 {
				lists = append(lists, pi.in)
			}
		}
	}
	return merge(lists, buf[:0]), lists
}

// rejects reports whether rule i cannot match env, judged by the comparisons its `when`
// starts with — as for the index, but for every leading comparison, not only the first: in
// `task.attributes.call_sid != nil && task.attributes.vip == true`, a callback without vip
// is rejected without running the rule. A rule is rejected only when one comparison is
// false and neither it nor one before it could fail at run time, so that the rule would
// have evaluated to false with no error.
func (ix *index) rejects(i int, env *rules.Env) bool {
	for _, g := range ix.guards[i] {
		v, ok := g.path.read(env)
		if !ok {
			return false // expr may fail reading the path: run the rule
		}
		switch g.kind {
		case compareNotNil:
			if v == nil {
				return true
			}
		case compareEqual:
			// The constant is a string or a boolean; nothing else equals it, and comparing
			// cannot fail.
			switch v.(type) {
			case string, bool:
				if v != g.consts[0] {
					return true
				}
			default:
				return true
			}
		case compareIn:
			s, isStr := v.(string)
			if !isStr {
				return false // expr may fail: run the rule
			}
			if !slices.Contains(g.consts, any(s)) {
				return true
			}
		}
	}
	return false
}

// merge joins sorted lists of rule numbers into one sorted list without duplicates.
func merge(lists [][]int, out []int) []int {
	switch len(lists) {
	case 0:
		return out
	case 1:
		return append(out, lists[0]...)
	}
	pos := make([]int, len(lists))
	for {
		best := -1
		for i, l := range lists {
			if pos[i] < len(l) && (best < 0 || l[pos[i]] < lists[best][pos[best]]) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		v := lists[best][pos[best]]
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
		pos[best]++
	}
}
