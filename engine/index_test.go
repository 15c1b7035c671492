package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

// The index is held to expr itself: for each callback, every rule the index leaves out must
// evaluate to false with no error when expr runs it (skipsOnlyFalse), and Decide must decide
// as Explain, which runs every rule in order (agrees).

func indexEngine(t testing.TB, src string) *Engine {
	t.Helper()
	set, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return New(set)
}

// missing, as an attribute's value, leaves the attribute out.
const missing = "\x00missing"

// attributeValues are what the random callbacks put in attributes: every kind of JSON
// value, numbers that equal the rules' integer and float constants, numbers around 2^53
// (9007199254740993 decodes as the float64 9007199254740992), -0, strings of digits, objects
// and lists with the values the rules look for.
var attributeValues = []any{
	"a", "b", "c", "d", "e", "z", "", "1", "true", "gold", "silver", "pro", "x", "y", true, false, nil,
	0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, -1.0, int64(9007199254740992), int64(9007199254740993), 1e300,
	json.RawMessage("-0"),
	map[string]any{"tier": "gold"}, map[string]any{"tier": "silver", "id": 1}, map[string]any{"id": 2.0, "tier": nil},
	map[string]any{"plan": map[string]any{"kind": "pro"}}, map[string]any{"plan": "pro"}, map[string]any{},
	[]any{"a"}, []any{1.0, "b"}, []any{}, []any{nil, true}, []any{[]any{"a"}, map[string]any{"a": 1}},
	missing,
}

// priorities are TaskPriority values, around 2^53 too.
var priorities = []string{"", "0", "1", "2", "3", "5", "10", "-1", "9007199254740992", "9007199254740993", "9223372036854775807"}

// randomCallback is a callback whose attributes are drawn from attributeValues.
func randomCallback(t testing.TB, pick func(n int) int) url.Values {
	attrs := func(keys ...string) string {
		m := map[string]any{}
		for _, k := range keys {
			if v := attributeValues[pick(len(attributeValues))]; v != missing {
				m[k] = v
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	params := url.Values{
		"TaskAttributes":   {attrs("q", "vip", "tier", "flag", "customer", "n", "s", "list")},
		"WorkerAttributes": {attrs("n", "team", "w")},
		"WorkerSid":        {[]string{"WK1", "WK2"}[pick(2)]},
		"TaskQueueSid":     {[]string{"WQ1", "WQ2"}[pick(2)]},
		"WorkflowSid":      {[]string{"WW1", "WW2"}[pick(2)]},
		"ReservationSid":   {[]string{"", "WR1"}[pick(2)]},
		"TaskAge":          {fmt.Sprint(pick(10))},
		"TaskPriority":     {priorities[pick(len(priorities))]},
	}
	if pick(2) == 0 {
		params.Set("Custom", "set")
	}
	return params
}

func TestIndexAgreesWithFullEvaluation(t *testing.T) {
	for _, name := range []string{"index", "guards", "index-numbers"} {
		t.Run(name, func(t *testing.T) {
			e := indexEngine(t, testkit.Rules(t, name))
			r := rand.New(rand.NewPCG(1, 2))
			held := map[string]bool{}
			for i := range 10000 {
				params := randomCallback(t, r.IntN)
				what := fmt.Sprintf("callback %d", i)
				agrees(t, e, params, what)
				for _, name := range skipsOnlyFalse(t, e, params, what) {
					held[name] = true
				}
			}
			// Most rules hold for some callback: the comparisons above are not only of rules
			// that are false.
			if len(held) < len(e.set.Rules)*3/4 {
				t.Errorf("only %d of %d rules held for some callback: %v", len(held), len(e.set.Rules), held)
			}
		})
	}
}

// agrees checks Decide against Explain, which runs every rule in order.
func agrees(t *testing.T, e *Engine, params url.Values, what string) {
	t.Helper()
	fast, full := e.Decide(params, time.Time{}), e.Explain(params, time.Time{})
	if fast.Rule != full.Rule || string(fast.Response()) != string(full.Response()) {
		t.Fatalf("%s %v: Decide = %s, Explain = %s; trace %+v", what, params, fast.Rule, full.Rule, full.Trace)
	}
	// Explain ran every rule up to the match; Decide may only have skipped rules that
	// evaluate to false without error, so the runtime errors must be the same.
	if diff := cmp.Diff(ruleErrorNames(full), ruleErrorNames(fast)); diff != "" {
		t.Fatalf("%s %v: rule errors differ (-explain +decide):\n%s", what, params, diff)
	}
}

func ruleErrorNames(d *Decision) []string {
	var out []string
	for _, re := range d.RuleErrors {
		out = append(out, re.Rule)
	}
	return out
}

// skipsOnlyFalse runs every rule of e with expr and checks the index against it, rule by
// rule rather than only up to the first match: a rule the index leaves out (not a candidate,
// or rejected) must evaluate to false with no error; and a rule made only of guards must be
// left out when it does, unless a guard is `c in path` on an object, which the index does
// not look into. It returns the rules that held.
func skipsOnlyFalse(t *testing.T, e *Engine, params url.Values, what string) (held []string) {
	t.Helper()
	env, err := newEnv(params, e.set.Vars, e.params)
	if err != nil {
		return nil // on_error decides; no rule runs
	}
	var lk lookup
	kept := map[int]bool{}
	for _, i := range e.index.candidates(env, &lk) {
		if !e.index.rejects(i, &lk) {
			kept[i] = true
		}
	}
	var machine vm.VM
	for i, r := range e.set.Rules {
		out, err := machine.Run(r.Program, env)
		runs := err != nil || out == true
		if err == nil && out == true {
			held = append(held, r.Name)
		}
		switch {
		case runs && !kept[i]:
			t.Fatalf("%s %v: the index skips %s (%s), which gives %v, %v", what, params, r.Name, r.When, out, err)
		case !runs && kept[i] && onlyGuards(e, i) && !looksIntoObject(e, i, &lk):
			t.Fatalf("%s %v: the index keeps %s (%s), which gives false with no error", what, params, r.Name, r.When)
		}
	}
	return held
}

func onlyGuards(e *Engine, i int) bool {
	return len(e.index.guards[i]) == len(conjuncts(e.set.Rules[i].Program.Node()))
}

func looksIntoObject(e *Engine, i int, lk *lookup) bool {
	var looks func(gs []guard) bool
	looks = func(gs []guard) bool {
		for _, g := range gs {
			if g.op == opHas && lk.value(g.p).kind == mapValue || looks(g.anyOf) {
				return true
			}
		}
		return false
	}
	return looks(e.index.guards[i])
}

// guardVars are the vars of the guard tests: integers beyond 2^53 and beyond int64, a NaN,
// a -0, a list and a map.
const guardVars = `vars:
  big: 9007199254740993
  huge: 18446744073709551615
  nan: .nan
  neg0: -0.0
  list: [1, "a", true, null]
  set: {a: 1, b: 2}
`

// Each guard's evaluation by the index agrees with expr running it, on a grid of values and
// of ways a path is reached: where the index says true or false, expr gives that with no
// error; where expr fails, the index says it may; and the index says it may fail where expr
// does not only for `c in path` on an object.
func TestGuardsAgreeWithExpr(t *testing.T) {
	comparisons := []string{
		`X == 1`, `X == 1.0`, `X == 1.5`, `X == -0.0`, `X == vars.neg0`, `X == "a"`, `X == true`, `X == nil`,
		`X != nil`, `X != 1`, `X != "a"`, `1 == X`, `"a" == X`, `X == 9007199254740993`, `X == 9007199254740992.0`,
		`X == vars.big`, `X == vars.huge`, `X == vars.nan`, `X != vars.nan`,
		`X in [1, 2.5, "a", true, nil]`, `X in [1, 2, 3]`, `X in ["a", "b"]`, `X not in ["a", "b"]`, `X in [nil]`,
		`X in vars.list`, `X in vars.set`, `X not in [1, "a"]`, `not (X == 1)`, `!(X in ["a"])`,
		`X < 2`, `X <= 2.5`, `X > -1`, `X >= 9007199254740993`, `X > 9007199254740992`, `2 < X`, `2.5 >= X`,
		`X < vars.nan`, `X >= vars.huge`, `X >= vars.big`, `X in 1..3`, `X > 2.5`, `X < -0.5`,
		`X >= 18014398509481988.0`, `X == 18014398509481988.0`, `X < 9007199254740991.5`,
		`"a" in X`, `1 in X`, `nil in X`, `true in X`, `not ("a" in X)`, `"x" not in X`,
		`X == 1 || X == "a"`, `X == nil || X == 2.5 || X == true`, `X in [1, 2] || X == "b"`,
	}
	attributePaths := []string{
		`task.attributes.v`, `task.attributes.o?.v`, `task.attributes.o.v`,
		`(task.attributes.v ?? 1)`, `(task.attributes.o?.v ?? "a")`, `(task.attributes.v ?? nil)`, `(task.attributes.v ?? [1, "a"])`,
		`(task.attributes.o?.v ?? 2.5)`,
	}
	leaves := []any{
		nil, "a", "b", "", true, false, 0.0, math.Copysign(0, -1), 1.0, 1.5, 2.0, 2.5, 3.0, -1.0, -0.5,
		9007199254740992.0, 9007199254740994.0, 1e300, math.Inf(-1),
		[]any{}, []any{"a"}, []any{1.0, nil}, []any{true, map[string]any{}}, []any{"x", "a"},
		map[string]any{}, map[string]any{"a": 1.0}, map[string]any{"v": "a"},
	}
	// How task.attributes holds the value; a nil leaf stands for the attribute being absent.
	placements := func(p string, leaf any) []map[string]any {
		if !strings.Contains(p, ".o") {
			if leaf == nil {
				return []map[string]any{{}, {"v": nil}}
			}
			return []map[string]any{{"v": leaf}}
		}
		out := []map[string]any{{"o": map[string]any{"v": leaf}}}
		if leaf == nil {
			out = append(out, map[string]any{}, map[string]any{"o": nil}, map[string]any{"o": "a"}, map[string]any{"o": map[string]any{}}, map[string]any{"o": []any{}})
		}
		return out
	}
	// Past 2^53 float64(i) rounds: 2^54+3 converts to 2^54+4.
	ints := []int{0, 1, 2, 3, -1, 1 << 53, 1<<53 + 1, 1<<53 - 1, 1<<53 + 2, 1<<54 + 3, 1<<54 + 4, math.MaxInt64, math.MinInt64}

	var whens []string
	for _, c := range comparisons {
		for _, p := range append(slices.Clone(attributePaths), "task.priority") {
			whens = append(whens, strings.ReplaceAll(c, "X", p))
		}
	}
	guards, skipped := 0, 0
	for _, when := range whens {
		set, err := rules.Parse("guard.yaml", []byte("version: 1\n"+guardVars+"rules:\n  - {name: g, when: '"+when+"', do: accept}\n"))
		if err != nil {
			skipped++ // a comparison expr's checker refuses on this path, like task.priority == "a"
			continue
		}
		ix := buildIndex(set)
		if len(ix.guards[0]) == 0 {
			// Not a guard: only a float too large to compare exactly with an int path, an
			// ordering under not and a || of sets on an int path may be left to expr.
			if !strings.Contains(when, "task.priority") && !strings.Contains(when, "!(") {
				t.Errorf("%s: not indexed", when)
			}
			continue
		}
		guards++
		prog := set.Rules[0].Program
		var machine vm.VM
		check := func(env *rules.Env, raw any, readable bool) {
			out, err := machine.Run(prog, env)
			want := mayFail
			if err == nil {
				want = is(out == true)
			}
			// A range of two guards on the same path (x in 1..3 on an int path) is held to
			// expr guard by guard, through rejects.
			var lk lookup
			lk.start(ix, env)
			got := isTrue
			for i := range ix.guards[0] {
				if o := ix.guards[0][i].outcome(&lk); o != isTrue {
					got = o
					break
				}
			}
			v := lk.value(ix.guards[0][0].p)
			switch {
			case got != mayFail && got != want:
				t.Errorf("%s with %s: the index says %v; expr gives %v, %v", when, show(env), got, out, err)
			case got == mayFail && want != mayFail && !(ix.guards[0][0].op == opHas && v.kind == mapValue):
				t.Errorf("%s with %s: the index says it may fail; expr gives %v", when, show(env), out)
			}
			if g := &ix.guards[0][0]; readable && len(ix.guards[0]) == 1 {
				if r, ok := g.exprEval(raw); (ok && err != nil) || (!ok && err == nil) || (ok && r != (out == true)) {
					t.Errorf("%s with %v: exprEval = %v, %v; expr gives %v, %v", when, raw, r, ok, out, err)
				}
			}
		}
		if strings.Contains(when, "task.priority") {
			for _, i := range ints {
				check(&rules.Env{Task: rules.Task{Priority: i, Attributes: map[string]any{}}, Vars: set.Vars}, i, true)
			}
			continue
		}
		path := when
		for _, p := range attributePaths {
			if strings.Contains(when, p) {
				path = p
			}
		}
		for _, leaf := range leaves {
			for k, attrs := range placements(path, leaf) {
				check(&rules.Env{Task: rules.Task{Attributes: attrs}, Vars: set.Vars}, leaf, k == 0 || !strings.Contains(path, ".o"))
			}
		}
	}
	if guards < len(whens)/2 {
		t.Errorf("only %d of %d comparisons were guards (%d refused by the checker)", guards, len(whens), skipped)
	}
}

func show(env *rules.Env) string {
	b, _ := json.Marshal(map[string]any{"attributes": env.Task.Attributes, "priority": env.Task.Priority})
	return string(b)
}

// Rules that are ranges on one path, overlapping or not, open or closed, with the values at,
// between and beyond their end points: every rule the index keeps or skips, as expr says.
func TestRangesAgreeWithExpr(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	bounds := []string{"0", "0.5", "1", "1.5", "2", "3", "-1", "vars.nan", "9007199254740993"}
	ops := []string{"<", "<=", ">", ">="}
	for _, n := range []int{1, 5, 40, 400} {
		var b strings.Builder
		b.WriteString("version: 1\n" + guardVars + "rules:\n")
		for i := range n {
			when := fmt.Sprintf("task.attributes.n %s %s", ops[r.IntN(4)], bounds[r.IntN(len(bounds))])
			if r.IntN(4) > 0 {
				when += fmt.Sprintf(" && %s %s task.attributes.n", bounds[r.IntN(len(bounds))], ops[r.IntN(4)])
			}
			if r.IntN(4) == 0 {
				when = "task.attributes.s != nil && " + when
			}
			fmt.Fprintf(&b, "  - {name: r%d, when: '%s', do: accept}\n", i, when)
		}
		e := indexEngine(t, b.String())
		for _, v := range []string{"-2", "-1", "-0.5", "0", "0.25", "0.5", "1", "1.25", "1.5", "2", "2.5", "3", "4",
			"9007199254740992", "9007199254740993", "1e300", `"a"`, "null", "[1]", "{}"} {
			for _, s := range []string{"", `,"s":1`} {
				params := testkit.CallbackWith(1, `{"n":`+v+s+`}`, `{}`)
				skipsOnlyFalse(t, e, params, fmt.Sprintf("%d rules, n = %s%s", n, v, s))
				agrees(t, e, params, fmt.Sprintf("%d rules, n = %s%s", n, v, s))
			}
		}
	}
}

// Nested ranges are held in a few nodes each, not in every region they cover, and found as
// expr finds them.
func TestRangesOverlapping(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	const n = 300
	for i := range n {
		fmt.Fprintf(&b, "  - {name: r%d, when: 'task.attributes.n >= %d', do: accept}\n", i, n-i)
	}
	e := indexEngine(t, b.String())
	r := e.index.paths[0].franges
	if r == nil || len(r.rules) > 2*n*bits.Len(uint(r.leaves)) {
		t.Fatalf("ranges of %d nested intervals hold %d rule numbers; want at most 2 per level of the tree each", n, len(r.rules))
	}
	for _, v := range []string{"0", "1", "150", "150.5", "300", "301"} {
		params := testkit.CallbackWith(1, `{"n":`+v+`}`, `{}`)
		skipsOnlyFalse(t, e, params, "n = "+v)
	}
}

// Rules on many attributes, of which a callback has a few: the index looks up the keys the
// callback has and takes nil for the others.
func TestManyAttributes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	comparisons := []string{`== "a"`, `== 1`, `!= "a"`, `== nil`, `!= nil`, `in ["a", 1]`, `>= 1`, `not in ["b"]`}
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := range 200 {
		key := fmt.Sprintf("k%d", r.IntN(60))
		path := "task.attributes." + key
		switch r.IntN(4) {
		case 0:
			path = "(task.attributes." + key + ` ?? "a")`
		case 1:
			path = "worker.attributes." + key
		}
		when := path + " " + comparisons[r.IntN(len(comparisons))]
		if r.IntN(3) == 0 {
			when = fmt.Sprintf(`"a" in task.attributes.%s`, key)
		}
		fmt.Fprintf(&b, "  - {name: r%d, when: '%s && task.attributes.k%d != 2', do: accept}\n", i, when, r.IntN(60))
	}
	e := indexEngine(t, b.String())
	if len(e.index.groups) != 2 {
		t.Fatalf("%d groups of attribute paths; want 2", len(e.index.groups))
	}
	values := []string{`"a"`, `"b"`, "1", "2", "null", `["a"]`, "{}", "true"}
	for i := range 3000 {
		attrs := func() string {
			var kv []string
			for range r.IntN(6) {
				kv = append(kv, fmt.Sprintf(`"k%d":%s`, r.IntN(60), values[r.IntN(len(values))]))
			}
			return "{" + strings.Join(kv, ",") + "}"
		}
		params := testkit.CallbackWith(1, attrs(), attrs())
		what := fmt.Sprintf("callback %d", i)
		skipsOnlyFalse(t, e, params, what)
		agrees(t, e, params, what)
	}
}

// FuzzIndex generates a rules file from guards, other conditions and paths the index
// treats differently, and callbacks, and holds the index to expr as above.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{7, 1, 9, 200, 3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43, 38, 32, 79, 50, 28, 84, 19, 71, 69, 39, 93, 75, 10, 58, 20, 97, 49, 44, 59, 23, 7, 81, 64, 6, 28, 62, 8, 99, 86, 28, 3, 48, 25})
	f.Add([]byte("the index must skip only rules that are false with no error, whatever the callback"))
	f.Add([]byte{255, 254, 253, 252, 251, 250, 249, 248, 247, 246, 245, 244, 243, 242, 241, 240, 239, 238, 237, 236})
	f.Fuzz(func(t *testing.T, data []byte) {
		pick := func(n int) int {
			if len(data) == 0 {
				return 0
			}
			b := int(data[0])
			data = data[1:]
			return b % n
		}
		src := generatedFile(pick)
		set, err := rules.Parse("fuzz.yaml", []byte(src))
		if err != nil {
			return // a comparison expr's checker refuses, like task.priority == "a"
		}
		e := New(set)
		for i := range 1 + pick(4) {
			params := randomCallback(t, pick)
			what := fmt.Sprintf("rules\n%s\ncallback %d", src, i)
			agrees(t, e, params, what)
			skipsOnlyFalse(t, e, params, what)
		}
	})
}

// generatedFile writes a rules file whose choices pick makes.
func generatedFile(pick func(n int) int) string {
	paths := []string{
		"task.attributes.n", "task.attributes.s", "task.attributes.flag", "task.attributes.list",
		"task.attributes.customer?.tier", "task.attributes.customer.tier", "task.attributes.customer?.id",
		"(task.attributes.n ?? 1)", `(task.attributes.customer?.tier ?? "gold")`, "task.priority", "worker.attributes.w",
		"workflow_sid", "params.Custom",
	}
	constants := []string{"1", "1.0", "1.5", "2", "-1", `"a"`, `"gold"`, `""`, "true", "false", "nil", "9007199254740993",
		"vars.big", "vars.nan", "vars.huge", "vars.neg0"}
	lists := []string{`[1, 2]`, `["a", "gold"]`, `[1, "a", nil, true]`, "vars.list", "vars.set", "[]", `["set", ""]`}
	var b strings.Builder
	b.WriteString("version: 1\n" + guardVars + "rules:\n")
	for i := range 1 + pick(12) {
		var conj []string
		for range 1 + pick(3) {
			p, c := paths[pick(len(paths))], constants[pick(len(constants))]
			switch pick(13) {
			case 0:
				conj = append(conj, p+" == "+c)
			case 1:
				conj = append(conj, c+" == "+p)
			case 2:
				conj = append(conj, p+" != "+c)
			case 3:
				conj = append(conj, p+" in "+lists[pick(len(lists))])
			case 4:
				conj = append(conj, p+" not in "+lists[pick(len(lists))])
			case 5:
				conj = append(conj, p+" "+[]string{"<", "<=", ">", ">="}[pick(4)]+" "+c)
			case 6:
				conj = append(conj, c+" "+[]string{"<", "<=", ">", ">="}[pick(4)]+" "+p)
			case 7:
				conj = append(conj, c+" in "+p)
			case 8:
				conj = append(conj, "not ("+c+" in "+p+")")
			case 9:
				conj = append(conj, p+" != nil")
			case 10:
				conj = append(conj, "("+p+" == "+c+" || "+p+" == nil)")
			case 11:
				q := paths[pick(len(paths))]
				conj = append(conj, "("+p+" == "+c+" || "+q+" "+[]string{"==", "!=", "<", ">="}[pick(4)]+" "+constants[pick(len(constants))]+" || "+c+" in "+q+")")
			default:
				conj = append(conj, "len(task.attributes.s ?? \"\") == 1")
			}
		}
		fmt.Fprintf(&b, "  - {name: r%d, when: '%s', do: accept}\n", i, strings.Join(conj, " && "))
	}
	return b.String()
}
