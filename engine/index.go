package engine

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm/runtime"
	"github.com/reservist/reservist/rules"
)

// The index lets a callback skip rules that cannot match without running them.
//
// A rule's `when` is split at its top-level &&s, and the comparisons it starts with are its
// guards: a path of the callback (task.attributes.queue, task.priority, worker.sid, …),
// perhaps with a constant `?? default`, compared with constants — `==`, `!=`, `in` and
// `not in` a constant list or set, `<`, `<=`, `>`, `>=` a number — or a constant `in` the
// path; or a `||` of such comparisons. expr evaluates `a && b` by evaluating a and stopping
// when it is false, so when the guards up to one that is false all evaluate without an
// error, the rule evaluates to false with no error. Skipping such a rule changes neither the
// decision nor the rule errors, and it is the only skip the index makes. Wherever a guard
// could fail for the value at hand — the path cannot be read (an object missing on the way,
// reached without ?.), or the comparison is not defined for that value (an ordering on a
// string, `in` over a set of strings with a number) — the rule is run as written and fails
// as it would have.
//
// For each callback, each path is read once. A path's table gives the rules whose index
// guard can hold, or fail, for the value read: equality and membership by the constant,
// ranges by a binary search over their end points, and lists for what a value of the wrong
// kind makes fail. A rule's index guard is its first guard, or a later one when only `!=`,
// `not in` or `!= nil` guards come before it, which cannot fail once their paths are read
// (so `call_sid != nil && language == "es"` is found by its language). A `||` of comparisons
// on one path by == is one set; any other `||` is filed under each of its comparisons, since
// `a || b` is false with no error only when both are. Each candidate's guards are then
// evaluated in order, from the values read, and the rules left run in rule order.
//
// What each comparison does is expr's, as its compiler emits it and vm/runtime (expr v1.17.8)
// computes it; exprEval below calls those functions, and index_test.go holds the
// index's own evaluation to them on a grid of values:
//   - `==` and `!=` are runtime.Equal, which never fails. Numbers of any two types compare as
//     numbers: an int with a float64 as float64(int) (so 1 == 1.0, and a JSON number, which
//     attrjson.go decodes as float64, equals an integer literal it rounds to), two integers
//     as ints (task.priority, an int, is compared exactly beyond 2^53); strings with strings,
//     booleans with booleans; anything else by reflect.DeepEqual, so a number, a string, a
//     boolean and nil equal nothing of another kind, and nil equals only nil.
//   - `in` over a list (an ArrayNode, or the []any the optimizer folds a list of literals
//     into, or a list from vars) is runtime.Equal of each element with the value: it never
//     fails. `in` over a set — the map[string]struct{} the optimizer makes of a list of
//     strings, the map[int]struct{} it makes of integers on an int path, a map from vars —
//     is reflect's MapIndex, which panics (an error for the rule) for a value whose type is
//     not the keys', and looks up the zero key for nil.
//   - `<`, `<=`, `>`, `>=` are runtime.Less and the like: numbers as for `==`, a string only
//     with a string, and anything else fails.
//   - `c in path` is runtime.In(c, value): false for nil, runtime.Equal of each element for a
//     list, a key lookup for a map, and it fails for a string, a number or a boolean.
//   - `?.` stops the chain at nil; `a ?? b` is b when a is nil (runtime.IsNil).

// index is what buildIndex makes of a rule set.
type index struct {
	paths  []*pathIndex // every path a guard reads; paths[i].id == i
	looked []*pathIndex // the paths candidates reads, but for those in groups
	groups []*keyGroup  // task.attributes.KEY and worker.attributes.KEY paths
	other  []int        // rules without guards, in order: they always run
	guards [][]guard    // each rule's guards, in order
	every  []int        // every rule, in order, for Explain
}

// outcome is what a guard evaluates to for one value.
type outcome uint8

const (
	isFalse outcome = iota // false, and evaluating it cannot fail
	isTrue                 // true, and evaluating it cannot fail
	mayFail                // it may fail, or the index does not know: run the rule
)

// op is the kind of a guard.
type op uint8

const (
	opEqual op = iota // path == c, path in [c, …]: runtime.Equal with constants
	opSet             // path in a set: MapIndex over string or int keys
	opRange           // path <, <=, >, >= a number
	opHas             // c in path
	opAny             // a || b || …: comparisons on several paths, or of several kinds
)

// guard is one comparison of a path with constants that a `when` starts with.
type guard struct {
	p       *pathIndex
	op      op
	negated bool      // !=, not in, not (c in path)
	onNil   outcome   // for a nil value: exprEval's, with the default
	set     *constSet // opEqual, opSet (keys), opHas (the one constant)
	frange  interval[float64]
	irange  interval[int] // opRange on an int path
	anyOf   []guard       // opAny, and path == a || path == b …: the comparisons, in order
	w       *written      // the comparison as written, for exprEval; nil for opAny
}

// written is a comparison as the rule has it.
type written struct {
	operator string // the BinaryNode's: ==, !=, in, <, <=, >, >=
	pathLeft bool   // the path is the left operand
	constant any    // the other operand's value: a scalar, a list or a set
	def      any    // the ?? default, if hasDef
	hasDef   bool
	notOp    bool // under a unary not
}

// exprEval evaluates the guard on a value of its path as the compiled program does: the
// compiler emits OpEqual (runtime.Equal; OpEqualInt and OpEqualString for two ints or two
// strings compute the same), OpIn (runtime.In), OpLess and the like (runtime.Less, …),
// OpNot, and for `??` a jump on runtime.IsNil. ok is false where expr panics, which is a
// run-time error for the rule. The index uses it for what a nil value gives; the tests hold
// eval to it.
func (g *guard) exprEval(v any) (result, ok bool) {
	if len(g.anyOf) > 0 {
		// a || b: a first, b only when a is false; a failure is the whole expression's.
		for i := range g.anyOf {
			if r, ok := g.anyOf[i].exprEval(v); !ok || r {
				return r, ok
			}
		}
		return false, true
	}
	w := g.w
	if w == nil {
		return false, false
	}
	defer func() {
		if recover() != nil {
			result, ok = false, false
		}
	}()
	if w.hasDef && runtime.IsNil(v) {
		v = w.def
	}
	l, r := v, w.constant
	if !w.pathLeft {
		l, r = r, l
	}
	switch w.operator {
	case "==":
		result = runtime.Equal(l, r)
	case "!=":
		result = !runtime.Equal(l, r)
	case "in":
		result = runtime.In(l, r)
	case "<":
		result = runtime.Less(l, r)
	case "<=":
		result = runtime.LessOrEqual(l, r)
	case ">":
		result = runtime.More(l, r)
	case ">=":
		result = runtime.MoreOrEqual(l, r)
	default:
		return false, false
	}
	return result != w.notOp, true
}

// outcome is the guard's outcome for the callback lk was started with.
func (g *guard) outcome(lk *lookup) outcome {
	if g.op == opAny {
		// a || b: a first; b only when a is false.
		for i := range g.anyOf {
			if o := g.anyOf[i].outcome(lk); o != isFalse {
				return o
			}
		}
		return isFalse
	}
	return g.eval(lk.value(g.p))
}

// eval is the guard's outcome for a value read by the index: exprEval's, computed without
// reflection, or mayFail.
func (g *guard) eval(v *value) outcome {
	var o outcome
	switch v.kind {
	case unreadable:
		return mayFail
	case nilValue:
		return g.onNil
	}
	switch g.op {
	case opEqual:
		// runtime.Equal of a list or a map with a scalar constant is false.
		o = g.set.holds(v)
	case opSet:
		switch {
		case g.set.intKeys && v.kind == intValue:
			o = is(slices.Contains(g.set.ints, v.i))
		case !g.set.intKeys && v.kind == stringValue:
			o = is(g.set.hasString(v.s))
		default:
			return mayFail // MapIndex of a value that is not of the keys' type panics
		}
	case opRange:
		switch v.kind {
		case floatValue:
			o = is(g.frange.contains(v.f))
		case intValue:
			o = is(g.irange.contains(v.i))
		default:
			return mayFail // runtime.Less panics on anything but two numbers or two strings
		}
	case opHas:
		if v.kind != listValue {
			return mayFail // a map: not worth the index's while; a scalar: runtime.In panics
		}
		o = isFalse
		for _, e := range v.list {
			if g.set.holdsAny(e) {
				o = isTrue
				break
			}
		}
	}
	if g.negated {
		o ^= 1
	}
	return o
}

func is(b bool) outcome {
	if b {
		return isTrue
	}
	return isFalse
}

// constSet is a guard's constants, as the values they equal under runtime.Equal: strings,
// booleans, nil, and numbers — on an int path, integers as ints and floats as float64; on
// any other path, where a number is a JSON float64, every number as float64(c), which is how
// runtime.Equal converts both sides. A NaN equals nothing and is left out.
type constSet struct {
	strs    []string
	strMap  map[string]struct{} // strs, when there are many
	nums    []float64
	ints    []int
	bools   [2]bool
	null    bool
	intKeys bool // opSet: the set's keys are ints
}

// merge adds o's constants to s.
func (s *constSet) merge(o *constSet) {
	for _, x := range o.strs {
		s.add(x, false)
	}
	s.nums = append(s.nums, o.nums...)
	s.ints = append(s.ints, o.ints...)
	s.bools[0] = s.bools[0] || o.bools[0]
	s.bools[1] = s.bools[1] || o.bools[1]
	s.null = s.null || o.null
}

// holds is whether a value read from the path equals one of the constants.
func (s *constSet) holds(v *value) outcome {
	switch v.kind {
	case stringValue:
		return is(s.hasString(v.s))
	case boolValue:
		return is(s.bools[b2i(v.b)])
	case floatValue:
		return is(slices.Contains(s.nums, v.f))
	case intValue:
		return is(slices.Contains(s.ints, v.i) || slices.Contains(s.nums, float64(v.i)))
	}
	return isFalse
}

// holdsAny is whether an element of a JSON list equals one of the constants.
func (s *constSet) holdsAny(e any) bool {
	switch x := e.(type) {
	case nil:
		return s.null
	case string:
		return s.hasString(x)
	case bool:
		return s.bools[b2i(x)]
	case float64:
		return slices.Contains(s.nums, x)
	}
	return false
}

func (s *constSet) hasString(x string) bool {
	if s.strMap != nil {
		_, ok := s.strMap[x]
		return ok
	}
	return slices.Contains(s.strs, x)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// add puts a constant into the set as the values it equals (see constSet); ok is false for
// a constant the index does not take (a list, a map, a time).
func (s *constSet) add(c any, intPath bool) bool {
	switch x := c.(type) {
	case nil:
		s.null = true
	case string:
		s.strs = append(s.strs, x)
		if len(s.strs) > 8 {
			if s.strMap == nil {
				s.strMap = map[string]struct{}{}
				for _, y := range s.strs {
					s.strMap[y] = struct{}{}
				}
			}
			s.strMap[x] = struct{}{}
		}
	case bool:
		s.bools[b2i(x)] = true
	default:
		if i, ok := asInt(c); ok && intPath {
			s.ints = append(s.ints, i)
			return true
		}
		f, ok := asFloat(c)
		if !ok {
			return false
		}
		if f == f {
			s.nums = append(s.nums, f)
		}
	}
	return true
}

// asFloat is float64(c) for a number c, the conversion runtime.Equal and runtime.Less apply
// to compare a number with a float64.
func asFloat(c any) (float64, bool) {
	switch x := c.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// asInt is int(c) for an integer c, the conversion runtime.Equal and runtime.Less apply to
// compare an int with an integer.
func asInt(c any) (int, bool) {
	switch x := c.(type) {
	case int:
		return x, true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case uint:
		return int(x), true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	case uint64:
		return int(x), true
	}
	return 0, false
}

// interval is the numbers an ordering guard, or several on the same path, holds for.
type interval[T int | float64] struct {
	lo, hi         T
	lower, upper   bool // lo, hi bound it
	loOpen, hiOpen bool // lo, hi themselves are outside
	empty          bool // nothing: a NaN bound, or bounds that cross
}

func (iv interval[T]) contains(x T) bool {
	if iv.empty || x != x { // x != x: a NaN, for which every comparison is false
		return false
	}
	if iv.lower && (x < iv.lo || iv.loOpen && x == iv.lo) {
		return false
	}
	if iv.upper && (x > iv.hi || iv.hiOpen && x == iv.hi) {
		return false
	}
	return true
}

func (iv interval[T]) intersect(o interval[T]) interval[T] {
	out := iv
	out.empty = iv.empty || o.empty
	if o.lower && (!out.lower || o.lo > out.lo || o.lo == out.lo && o.loOpen) {
		out.lo, out.lower, out.loOpen = o.lo, true, o.loOpen
	}
	if o.upper && (!out.upper || o.hi < out.hi || o.hi == out.hi && o.hiOpen) {
		out.hi, out.upper, out.hiOpen = o.hi, true, o.hiOpen
	}
	if out.lower && out.upper && (out.lo > out.hi || out.lo == out.hi && (out.loOpen || out.hiOpen)) {
		out.empty = true
	}
	return out
}

// bounded is the interval `x operator c` holds for, c being on the right.
func bounded[T int | float64](operator string, c T) interval[T] {
	switch operator {
	case "<":
		return interval[T]{hi: c, upper: true, hiOpen: true}
	case "<=":
		return interval[T]{hi: c, upper: true}
	case ">":
		return interval[T]{lo: c, lower: true, loOpen: true}
	}
	return interval[T]{lo: c, lower: true}
}

// maxExactInt bounds the floats an int is compared with exactly by converting the float to
// an int bound: below 2^53 in magnitude, float64(i) >= c holds exactly when i >= ceil(c).
const maxExactInt = 1 << 53

// intRange is the ints `i operator c` holds for, as runtime.Less compares an int with a
// number: as ints with an integer, as float64(i) with a float. ok is false for a float
// too large to convert exactly.
func intRange(operator string, c any) (interval[int], bool) {
	if i, ok := asInt(c); ok {
		return bounded(operator, i), true
	}
	f, _ := asFloat(c)
	switch {
	case f != f:
		return interval[int]{empty: true}, true
	case math.Abs(f) >= maxExactInt:
		return interval[int]{}, false
	}
	switch operator {
	case "<", ">=":
		return bounded(operator, int(math.Ceil(f))), true
	}
	return bounded(operator, int(math.Floor(f))), true
}

// pathIndex is one path that guards read, and the rules whose index guard is on it.
type pathIndex struct {
	id      int
	path    path
	indexed bool // some rule's index guard reads it

	eq      keyed // opEqual and opSet rules, by constant
	has     keyed // opHas rules, by constant
	franges *ranges[float64]
	iranges *ranges[int]

	// Rules whose index guard reads the path, by the kinds of value they run for whatever the
	// value is: a negated guard holds for all values but a few; the others fail for values of
	// the wrong kind.
	negated  []int // !=, not in
	strSets  []int // in a set of strings: fails for anything but a string
	intSets  []int // in a set of ints: fails for anything but an int
	ordered  []int // ranges: fail for anything but a number
	hasAny   []int // c in path: fail for a scalar; run for a map
	onNil    []int // whose index guard does not give false for nil
	all      []int // every rule whose index guard reads the path: they run when it cannot be read
	prefixed []int // rules indexed on a later guard that have a guard on this path before it

	franged []rangedRule[float64]
	iranged []rangedRule[int]
}

// keyed maps constants to the rules (in order) whose guard compares with them.
type keyed struct {
	strs  map[string][]int
	nums  map[float64][]int
	ints  map[int][]int
	bools [2][]int
	null  []int
}

func (k *keyed) add(s *constSet, rule int) {
	for _, x := range s.strs {
		if k.strs == nil {
			k.strs = map[string][]int{}
		}
		k.strs[x] = appendOnce(k.strs[x], rule)
	}
	for _, x := range s.nums {
		if k.nums == nil {
			k.nums = map[float64][]int{}
		}
		k.nums[x] = appendOnce(k.nums[x], rule)
	}
	for _, x := range s.ints {
		if k.ints == nil {
			k.ints = map[int][]int{}
		}
		k.ints[x] = appendOnce(k.ints[x], rule)
	}
	for b, yes := range s.bools {
		if yes {
			k.bools[b] = appendOnce(k.bools[b], rule)
		}
	}
	if s.null {
		k.null = appendOnce(k.null, rule)
	}
}

// appendOnce appends rule to a list in rule order unless it is already last.
func appendOnce(l []int, rule int) []int {
	if len(l) > 0 && l[len(l)-1] == rule {
		return l
	}
	return append(l, rule)
}

// candidates adds the rules of the path that must run for v to lk.
func (p *pathIndex) candidates(v *value, lk *lookup) {
	switch v.kind {
	case unreadable:
		lk.add(p.all)
		lk.add(p.prefixed)
		return
	case nilValue:
		lk.add(p.onNil)
		return
	}
	lk.add(p.negated)
	switch v.kind {
	case stringValue:
		lk.add(p.eq.strs[v.s])
		lk.add(p.intSets)
		lk.add(p.ordered)
		lk.add(p.hasAny)
	case boolValue:
		lk.add(p.eq.bools[b2i(v.b)])
		lk.add(p.strSets)
		lk.add(p.intSets)
		lk.add(p.ordered)
		lk.add(p.hasAny)
	case floatValue:
		lk.add(p.eq.nums[v.f])
		lk.add(p.strSets)
		lk.add(p.intSets)
		if p.franges != nil {
			p.franges.lookup(v.f, lk)
		}
		lk.add(p.hasAny)
	case intValue:
		lk.add(p.eq.ints[v.i])
		lk.add(p.eq.nums[float64(v.i)])
		lk.add(p.strSets)
		if p.iranges != nil {
			p.iranges.lookup(v.i, lk)
		}
		lk.add(p.hasAny)
	case listValue:
		lk.add(p.strSets)
		lk.add(p.intSets)
		lk.add(p.ordered)
		for _, e := range v.list {
			switch x := e.(type) {
			case nil:
				lk.add(p.has.null)
			case string:
				lk.add(p.has.strs[x])
			case bool:
				lk.add(p.has.bools[b2i(x)])
			case float64:
				lk.add(p.has.nums[x])
			}
		}
	case mapValue:
		lk.add(p.strSets)
		lk.add(p.intSets)
		lk.add(p.ordered)
		lk.add(p.hasAny)
	}
}

// rangedRule is a rule's interval on a path, for building ranges.
type rangedRule[T int | float64] struct {
	rule int
	iv   interval[T]
}

// ranges finds the rules whose interval holds a number. The end points of all intervals cut
// the numbers into regions — below the first point, the first point, between the first and
// the second, … above the last — and a binary search finds a number's region. Each interval
// covers a run of regions, and a segment tree over the regions holds it in the few nodes
// that make up the run, so that the intervals holding a region are the lists on the way from
// its leaf to the root: one list for intervals that do not overlap, and a handful, however
// much they overlap.
type ranges[T int | float64] struct {
	points []T
	leaves int   // a power of two, at least the regions
	start  []int // node n's rules are rules[start[n]:start[n+1]]; the root is node 1
	rules  []int
}

func newRanges[T int | float64](rs []rangedRule[T]) *ranges[T] {
	r := &ranges[T]{}
	for _, x := range rs {
		if x.iv.empty {
			continue
		}
		if x.iv.lower {
			r.points = append(r.points, x.iv.lo)
		}
		if x.iv.upper {
			r.points = append(r.points, x.iv.hi)
		}
	}
	slices.Sort(r.points)
	r.points = slices.Compact(r.points)
	regions := 2*len(r.points) + 1
	r.leaves = 1
	for r.leaves < regions {
		r.leaves *= 2
	}
	// cover calls f with the nodes whose leaves are regions from to to: the standard
	// bottom-up walk of a segment tree.
	cover := func(from, to int, f func(node int)) {
		for l, h := from+r.leaves, to+r.leaves+1; l < h; l, h = l/2, h/2 {
			if l&1 == 1 {
				f(l)
				l++
			}
			if h&1 == 1 {
				h--
				f(h)
			}
		}
	}
	spans := make([][2]int, len(rs))
	for i, x := range rs {
		from, to := 0, regions-1
		if x.iv.lower {
			from = 2*r.point(x.iv.lo) + 1
			if x.iv.loOpen {
				from++
			}
		}
		if x.iv.upper {
			to = 2*r.point(x.iv.hi) + 1
			if x.iv.hiOpen {
				to--
			}
		}
		if x.iv.empty {
			from, to = 1, 0
		}
		spans[i] = [2]int{from, to}
	}
	// Two passes, counting then filling, each node's rules in rule order and once each: the
	// intervals of one rule (a || of ranges on the path) come one after the other.
	nodes := 2 * r.leaves
	last := make([]int, nodes)
	for n := range last {
		last[n] = -1
	}
	counts := make([]int, nodes+1)
	for i, sp := range spans {
		cover(sp[0], sp[1], func(n int) {
			if last[n] != rs[i].rule {
				last[n] = rs[i].rule
				counts[n+1]++
			}
		})
	}
	r.start = counts
	for n := 1; n <= nodes; n++ {
		r.start[n] += r.start[n-1]
	}
	r.rules = make([]int, r.start[nodes])
	fill := slices.Clone(r.start[:nodes])
	for n := range last {
		last[n] = -1
	}
	for i, sp := range spans {
		cover(sp[0], sp[1], func(n int) {
			if last[n] != rs[i].rule {
				last[n] = rs[i].rule
				r.rules[fill[n]] = rs[i].rule
				fill[n]++
			}
		})
	}
	return r
}

// point is the index of an end point.
func (r *ranges[T]) point(x T) int {
	return sort.Search(len(r.points), func(i int) bool { return r.points[i] >= x })
}

// lookup adds the rules whose interval holds x to lk.
func (r *ranges[T]) lookup(x T, lk *lookup) {
	if x != x {
		return // a NaN is in no interval
	}
	i := r.point(x)
	region := 2 * i
	if i < len(r.points) && r.points[i] == x {
		region++
	}
	for n := region + r.leaves; n >= 1; n /= 2 {
		lk.add(r.rules[r.start[n]:r.start[n+1]])
	}
}

// path is a chain of member accesses from a root of the environment.
type path struct {
	src      source
	root     string   // "task", "worker", "params", "reservation", "account_sid", …
	keys     []string // after the root, e.g. ["attributes", "queue"]
	optional []bool   // whether keys[i] was reached with ?.
}

// source is where in the environment a path starts.
type source uint8

const (
	fromParams source = iota
	fromTaskSid
	fromTaskQueueSid
	fromTaskAge
	fromTaskPriority
	fromTaskAttributes
	fromWorkerSid
	fromWorkerAttributes
	fromReservationSid
	fromAccountSid
	fromWorkspaceSid
	fromWorkflowSid
)

// key names the path with its ?.s: customer.tier and customer?.tier read differently.
func (p path) key() string {
	var b strings.Builder
	b.WriteString(p.root)
	for i, k := range p.keys {
		if p.optional[i] {
			b.WriteString("?")
		}
		b.WriteString(".")
		b.WriteString(k)
	}
	return b.String()
}

// intPath is whether the path's value is an int: task.age and task.priority.
func (p path) intPath() bool { return p.src == fromTaskAge || p.src == fromTaskPriority }

// pathOf reads the paths run-time errors name (runerror.go): task.sid, task.queue_sid,
// worker.sid, params.X and attributes.
func pathOf(n ast.Node) (path, bool) {
	p, ok := indexPath(n)
	switch p.src {
	case fromTaskAge, fromTaskPriority, fromReservationSid, fromAccountSid, fromWorkspaceSid, fromWorkflowSid:
		return path{}, false
	}
	return p, ok
}

// indexPath reads task.…, worker.…, params.X, reservation.sid, account_sid, workspace_sid
// and workflow_sid member chains with constant keys.
func indexPath(n ast.Node) (path, bool) {
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
			var ok bool
			p.src, ok = p.source()
			return p, ok
		}
		return path{}, false
	}
}

// source tells where the path starts, and whether read can follow it exactly as expr would.
func (p path) source() (source, bool) {
	one := func(want string, s source) (source, bool) { return s, len(p.keys) == 1 && p.keys[0] == want }
	switch p.root {
	case "task":
		if len(p.keys) >= 2 && p.keys[0] == "attributes" {
			return fromTaskAttributes, true
		}
		if len(p.keys) == 1 {
			switch p.keys[0] {
			case "sid":
				return fromTaskSid, true
			case "queue_sid":
				return fromTaskQueueSid, true
			case "age":
				return fromTaskAge, true
			case "priority":
				return fromTaskPriority, true
			}
		}
	case "worker":
		if len(p.keys) >= 2 && p.keys[0] == "attributes" {
			return fromWorkerAttributes, true
		}
		return one("sid", fromWorkerSid)
	case "reservation":
		return one("sid", fromReservationSid)
	case "params":
		return fromParams, len(p.keys) == 1
	case "account_sid":
		return fromAccountSid, len(p.keys) == 0
	case "workspace_sid":
		return fromWorkspaceSid, len(p.keys) == 0
	case "workflow_sid":
		return fromWorkflowSid, len(p.keys) == 0
	}
	return 0, false
}

// valueKind is the kind of value a path read, as far as the index tells them apart.
type valueKind uint8

const (
	unread     valueKind = iota
	unreadable           // expr would fail reading the path, or the value is not a plain JSON one
	nilValue
	stringValue
	boolValue
	floatValue // a JSON number
	intValue   // task.age, task.priority
	listValue
	mapValue
)

// value is what a path read for one callback, without boxing strings and ints.
type value struct {
	kind valueKind
	s    string
	f    float64
	i    int
	b    bool
	list []any
}

// String names the path as a rules author writes it, without the ?.s.
func (p path) String() string {
	if len(p.keys) == 0 {
		return p.root
	}
	return p.root + "." + strings.Join(p.keys, ".")
}

// read returns the path's value in env, and false where expr would fail reading it (a
// missing object reached without ?.).
func (p *path) read(env *rules.Env) (any, bool) {
	switch p.src {
	case fromTaskAttributes:
		return walk(env.Task.Attributes, p.keys[1:], p.optional[1:])
	case fromWorkerAttributes:
		return walk(env.Worker.Attributes, p.keys[1:], p.optional[1:])
	case fromTaskAge, fromTaskPriority:
		v := p.load(env)
		return v.i, true
	}
	v := p.load(env)
	return v.s, true
}

// load is read for the index: the value by kind, without boxing strings and ints.
func (p *path) load(env *rules.Env) value {
	switch p.src {
	case fromParams:
		// expr reads a missing key of a map[string]string as "".
		return value{kind: stringValue, s: env.Params[p.keys[0]]}
	case fromTaskSid:
		return value{kind: stringValue, s: env.Task.Sid}
	case fromTaskQueueSid:
		return value{kind: stringValue, s: env.Task.QueueSid}
	case fromTaskAge:
		return value{kind: intValue, i: env.Task.Age}
	case fromTaskPriority:
		return value{kind: intValue, i: env.Task.Priority}
	case fromWorkerSid:
		return value{kind: stringValue, s: env.Worker.Sid}
	case fromReservationSid:
		return value{kind: stringValue, s: env.Reservation.Sid}
	case fromAccountSid:
		return value{kind: stringValue, s: env.AccountSid}
	case fromWorkspaceSid:
		return value{kind: stringValue, s: env.WorkspaceSid}
	case fromWorkflowSid:
		return value{kind: stringValue, s: env.WorkflowSid}
	}
	attrs := env.Task.Attributes
	if p.src == fromWorkerAttributes {
		attrs = env.Worker.Attributes
	}
	v, ok := walk(attrs, p.keys[1:], p.optional[1:])
	if !ok {
		return value{kind: unreadable}
	}
	switch x := v.(type) {
	case nil:
		return value{kind: nilValue}
	case string:
		return value{kind: stringValue, s: x}
	case bool:
		return value{kind: boolValue, b: x}
	case float64:
		return value{kind: floatValue, f: x}
	case []any:
		if x != nil {
			return value{kind: listValue, list: x}
		}
	case map[string]any:
		if x != nil {
			return value{kind: mapValue}
		}
	}
	// A nil list or map is nil to ?? but not to ==: no JSON decoder makes one, and the
	// rules run as written.
	return value{kind: unreadable}
}

// walk follows keys from an attributes object as expr's member accesses do.
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

// lookup is what one decision's index work reuses from the last: the paths' values and the
// candidate lists.
type lookup struct {
	env   *rules.Env
	epoch uint32
	seen  []uint32 // seen[id] == epoch: vals[id] was read for this decision
	vals  []value
	lists [][]int
	out   []int
}

func (lk *lookup) start(ix *index, env *rules.Env) {
	lk.env = env
	if len(lk.seen) < len(ix.paths) {
		lk.seen = make([]uint32, len(ix.paths))
		lk.vals = make([]value, len(ix.paths))
	}
	lk.epoch++
	if lk.epoch == 0 {
		clear(lk.seen)
		lk.epoch = 1
	}
	lk.lists = lk.lists[:0]
}

// value is the path's value for this decision, read on first use.
func (lk *lookup) value(p *pathIndex) *value {
	if lk.seen[p.id] != lk.epoch {
		lk.vals[p.id] = p.path.load(lk.env)
		lk.seen[p.id] = lk.epoch
	}
	return &lk.vals[p.id]
}

func (lk *lookup) add(l []int) {
	if len(l) > 0 {
		lk.lists = append(lk.lists, l)
	}
}

// merged is the candidate lists as one list in rule order, without duplicates. A single
// list is returned as it is: the caller only reads it.
func (lk *lookup) merged() []int {
	switch len(lk.lists) {
	case 0:
		return nil
	case 1:
		return lk.lists[0]
	}
	lk.out = lk.out[:0]
	for _, l := range lk.lists {
		lk.out = append(lk.out, l...)
	}
	slices.Sort(lk.out)
	lk.out = slices.Compact(lk.out)
	return lk.out
}

// keyGroup is the paths one key below task.attributes or worker.attributes. When rules
// compare many attributes, most are absent from a callback and read nil: the group looks up
// the keys the callback has, and takes for the others every rule that nil does not rule out
// (a superset, which rejects narrows).
type keyGroup struct {
	src   source
	byKey map[string][]*pathIndex
	paths []*pathIndex
	onNil []int // every path's onNil, in order
}

func (g *keyGroup) candidates(lk *lookup) {
	m := lk.env.Task.Attributes
	if g.src == fromWorkerAttributes {
		m = lk.env.Worker.Attributes
	}
	if len(m) >= len(g.paths) {
		for _, p := range g.paths {
			p.candidates(lk.value(p), lk)
		}
		return
	}
	lk.add(g.onNil)
	for k := range m {
		for _, p := range g.byKey[k] {
			p.candidates(lk.value(p), lk)
		}
	}
}

// group puts the paths candidates reads into groups or looked.
func (ix *index) group() {
	groups := map[source]*keyGroup{}
	for _, p := range ix.paths {
		if !p.indexed && len(p.prefixed) == 0 {
			continue
		}
		src := p.path.src
		if (src != fromTaskAttributes && src != fromWorkerAttributes) || len(p.path.keys) != 2 {
			ix.looked = append(ix.looked, p)
			continue
		}
		g := groups[src]
		if g == nil {
			g = &keyGroup{src: src, byKey: map[string][]*pathIndex{}}
			groups[src] = g
			ix.groups = append(ix.groups, g)
		}
		g.byKey[p.path.keys[1]] = append(g.byKey[p.path.keys[1]], p)
		g.paths = append(g.paths, p)
		g.onNil = append(g.onNil, p.onNil...)
	}
	for _, g := range ix.groups {
		slices.Sort(g.onNil)
		g.onNil = slices.Compact(g.onNil)
	}
}

// candidates returns, in rule order, the rules a callback must run: every rule whose index
// guard can hold or fail for the callback, and every rule without guards. lk is reused; the
// list is valid until its next use.
func (ix *index) candidates(env *rules.Env, lk *lookup) []int {
	lk.start(ix, env)
	lk.add(ix.other)
	for _, g := range ix.groups {
		g.candidates(lk)
	}
	for _, p := range ix.looked {
		p.candidates(lk.value(p), lk)
	}
	return lk.merged()
}

// rejects reports whether rule i cannot match the callback lk was started with, judged by
// its guards in order: it is rejected when one guard is false and neither it nor one before
// it could fail, so that the rule would have evaluated to false with no error.
func (ix *index) rejects(i int, lk *lookup) bool {
	for j := range ix.guards[i] {
		switch ix.guards[i][j].outcome(lk) {
		case isFalse:
			return true
		case mayFail:
			return false
		}
	}
	return false
}

// builder makes an index.
type builder struct {
	ix     *index
	byPath map[string]*pathIndex
	vars   map[string]any
}

func buildIndex(set *rules.Set) *index {
	b := &builder{ix: &index{guards: make([][]guard, len(set.Rules))}, byPath: map[string]*pathIndex{}, vars: set.Vars}
	ix := b.ix
	var buf []guard
	for i, r := range set.Rules {
		ix.every = append(ix.every, i)
		buf = buf[:0]
		for _, c := range conjuncts(r.Program.Node()) {
			g, ok := b.guard(c)
			if !ok {
				break
			}
			buf = append(buf, g)
		}
		gs := slices.Clone(buf) // of its own size: a file may have many rules
		ix.guards[i] = gs
		if len(gs) == 0 {
			ix.other = append(ix.other, i)
			continue
		}
		k := indexGuard(gs)
		for _, g := range gs[:k] {
			g.p.prefixed = appendOnce(g.p.prefixed, i)
		}
		b.add(i, gs[k:])
	}
	for _, p := range ix.paths {
		if len(p.franged) > 0 {
			p.franges = newRanges(p.franged)
		}
		if len(p.iranged) > 0 {
			p.iranges = newRanges(p.iranged)
		}
		p.franged, p.iranged = nil, nil
	}
	ix.group()
	return ix
}

// indexGuard chooses the guard a rule is found by: the first that is not a negated
// equality, since those hold for nearly every value and cannot fail once their path is read.
func indexGuard(gs []guard) int {
	for k, g := range gs {
		if !(g.negated && g.op == opEqual) {
			return k
		}
	}
	return 0
}

// add files rule under its index guard, gs[0]; gs[1:] are the guards after it. A rule may
// be filed more than once on a path (a || of two kinds of comparison on it), and every list
// is in rule order without duplicates.
func (b *builder) add(rule int, gs []guard) {
	g := &gs[0]
	if g.op == opAny {
		for _, h := range g.anyOf {
			b.add(rule, []guard{h})
		}
		return
	}
	p := g.p
	p.indexed = true
	p.all = appendOnce(p.all, rule)
	if g.onNil != isFalse {
		p.onNil = appendOnce(p.onNil, rule)
	}
	if g.negated {
		p.negated = appendOnce(p.negated, rule)
		return
	}
	switch g.op {
	case opEqual:
		p.eq.add(g.set, rule)
	case opSet:
		p.eq.add(g.set, rule)
		if g.set.intKeys {
			p.intSets = appendOnce(p.intSets, rule)
		} else {
			p.strSets = appendOnce(p.strSets, rule)
		}
	case opHas:
		p.has.add(g.set, rule)
		p.hasAny = appendOnce(p.hasAny, rule)
	case opRange:
		// The ordering guards that follow on the same path narrow the range: for a number
		// none of them can fail.
		p.ordered = appendOnce(p.ordered, rule)
		fr, ir := g.frange, g.irange
		for _, h := range gs[1:] {
			if h.p != p || h.op != opRange {
				break
			}
			fr, ir = fr.intersect(h.frange), ir.intersect(h.irange)
		}
		if p.path.intPath() {
			p.iranged = append(p.iranged, rangedRule[int]{rule, ir})
		} else {
			p.franged = append(p.franged, rangedRule[float64]{rule, fr})
		}
	}
}

// conjuncts splits a `when` at its top-level &&s, in the order expr evaluates them.
func conjuncts(n ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		return append(conjuncts(b.Left), conjuncts(b.Right)...)
	}
	return []ast.Node{n}
}

// pathIndex returns the index of a path, made on first use.
func (b *builder) pathIndex(p path) *pathIndex {
	key := p.key()
	pi := b.byPath[key]
	if pi == nil {
		pi = &pathIndex{id: len(b.ix.paths), path: p}
		b.byPath[key] = pi
		b.ix.paths = append(b.ix.paths, pi)
	}
	return pi
}

// guard reports whether n is a comparison the index evaluates, and makes it.
func (b *builder) guard(n ast.Node) (guard, bool) {
	if bin, ok := n.(*ast.BinaryNode); ok && (bin.Operator == "||" || bin.Operator == "or") {
		return b.anyOf(bin)
	}
	notOp := false
	if u, ok := n.(*ast.UnaryNode); ok && (u.Operator == "not" || u.Operator == "!") {
		notOp, n = true, u.Node
	}
	bin, ok := n.(*ast.BinaryNode)
	if !ok {
		return guard{}, false
	}
	w := &written{operator: bin.Operator, notOp: notOp}
	g := guard{w: w, set: &constSet{}}
	var p path
	var c ast.Node
	if p, w.def, w.hasDef, ok = b.operand(bin.Left); ok {
		w.pathLeft, c = true, bin.Right
	} else if p, w.def, w.hasDef, ok = b.operand(bin.Right); ok {
		c = bin.Left
	} else {
		return guard{}, false
	}
	intPath := p.intPath()
	switch {
	case bin.Operator == "==" || bin.Operator == "!=":
		v, ok := b.scalar(c)
		if !ok || !g.set.add(v, intPath) {
			return guard{}, false
		}
		g.op, w.constant = opEqual, v
		g.negated = bin.Operator == "!="
	case bin.Operator == "in" && w.pathLeft:
		v, ok := b.constant(c)
		if !ok {
			return guard{}, false
		}
		w.constant = v
		switch set := v.(type) {
		case []any:
			g.op = opEqual
			for _, e := range set {
				if !g.set.add(e, intPath) {
					return guard{}, false
				}
			}
		case []int:
			g.op = opEqual
			for _, e := range set {
				g.set.add(e, intPath)
			}
		case map[string]struct{}:
			g.op = opSet
			for k := range set {
				g.set.add(k, intPath)
			}
		case map[string]any:
			g.op = opSet
			for k := range set {
				g.set.add(k, intPath)
			}
		case map[int]struct{}:
			g.op, g.set.intKeys = opSet, true
			for k := range set {
				g.set.ints = append(g.set.ints, k)
			}
		default:
			return guard{}, false
		}
	case bin.Operator == "in":
		v, ok := b.scalar(c)
		if !ok || !g.set.add(v, false) {
			return guard{}, false
		}
		g.op, w.constant = opHas, v
	case bin.Operator == "<" || bin.Operator == "<=" || bin.Operator == ">" || bin.Operator == ">=":
		v, ok := b.scalar(c)
		f, isNum := asFloat(v)
		if !ok || !isNum || notOp {
			return guard{}, false
		}
		operator := bin.Operator
		if !w.pathLeft {
			operator = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<="}[operator]
		}
		g.op, g.set, w.constant = opRange, nil, v
		if intPath {
			if g.irange, ok = intRange(operator, v); !ok {
				return guard{}, false
			}
		} else {
			g.frange = bounded(operator, f)
			g.frange.empty = f != f
		}
	default:
		return guard{}, false
	}
	g.negated = g.negated != notOp
	g.onNil = mayFail
	if r, ok := g.exprEval(nil); ok {
		g.onNil = is(r)
	}
	g.p = b.pathIndex(p)
	return g, true
}

// anyOf makes one guard of a || b || …, each a guard. path == a || path == b || path in
// [c, d] — comparisons by runtime.Equal, which cannot fail, of one path read the same way —
// is path in [a, b, c, d]; any other is opAny.
func (b *builder) anyOf(n *ast.BinaryNode) (guard, bool) {
	var parts []guard
	oneSet := true
	for _, d := range disjuncts(n) {
		g, ok := b.guard(d)
		if !ok {
			return guard{}, false
		}
		if g.op != opEqual || g.negated || len(parts) > 0 && (g.p != parts[0].p || g.w.hasDef != parts[0].w.hasDef || !runtime.Equal(g.w.def, parts[0].w.def)) {
			oneSet = false
		}
		parts = append(parts, g)
	}
	if !oneSet {
		// Each comparison is filed on its own path: the rule runs when any of them can hold
		// or fail, and is left out only when every one is false.
		return guard{op: opAny, p: parts[0].p, anyOf: parts, onNil: mayFail}, true
	}
	g := parts[0]
	g.anyOf = parts
	g.set = &constSet{}
	for i := range parts {
		g.set.merge(parts[i].set)
	}
	g.onNil = mayFail
	if r, ok := g.exprEval(nil); ok {
		g.onNil = is(r)
	}
	return g, true
}

// disjuncts splits a || b || c, in the order expr evaluates them.
func disjuncts(n ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "||" || b.Operator == "or") {
		return append(disjuncts(b.Left), disjuncts(b.Right)...)
	}
	return []ast.Node{n}
}

// operand reads a path, or a path ?? a constant.
func (b *builder) operand(n ast.Node) (p path, def any, hasDef, ok bool) {
	if bin, isBin := n.(*ast.BinaryNode); isBin && bin.Operator == "??" {
		if def, ok = b.constant(bin.Right); !ok {
			return p, nil, false, false
		}
		p, ok = indexPath(bin.Left)
		return p, def, true, ok
	}
	p, ok = indexPath(n)
	return p, nil, false, ok
}

// scalar returns the value of a constant nil, string, boolean or number.
func (b *builder) scalar(n ast.Node) (any, bool) {
	v, ok := b.constant(n)
	switch v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return v, ok
	}
	return nil, false
}

// maxRangeList bounds the a..b taken as a list.
const maxRangeList = 256

// constant returns the value of a literal, a list of literals, a set the optimizer made, or
// vars.NAME — the value expr computes for the node, which is the same at every run.
func (b *builder) constant(n ast.Node) (any, bool) {
	switch c := n.(type) {
	case *ast.NilNode:
		return nil, true
	case *ast.StringNode:
		return c.Value, true
	case *ast.BoolNode:
		return c.Value, true
	case *ast.IntegerNode:
		return c.Value, true
	case *ast.FloatNode:
		return c.Value, true
	case *ast.ConstantNode:
		return c.Value, true
	case *ast.ArrayNode:
		list := make([]any, 0, len(c.Nodes))
		for _, e := range c.Nodes {
			v, ok := b.scalar(e)
			if !ok {
				return nil, false
			}
			list = append(list, v)
		}
		return list, true
	case *ast.BinaryNode:
		// a..b of integer literals is runtime.MakeRange's []int, made at every run; a long
		// one is left to expr, which may refuse it under its memory budget.
		from, fok := c.Left.(*ast.IntegerNode)
		to, tok := c.Right.(*ast.IntegerNode)
		if c.Operator != ".." || !fok || !tok || to.Value-from.Value >= maxRangeList {
			return nil, false
		}
		return runtime.MakeRange(from.Value, to.Value), true
	case *ast.MemberNode:
		id, ok := c.Node.(*ast.IdentifierNode)
		key, kok := c.Property.(*ast.StringNode)
		if !ok || !kok || id.Value != "vars" || c.Optional || c.Method {
			return nil, false
		}
		v, ok := b.vars[key.Value]
		return v, ok
	}
	return nil, false
}
