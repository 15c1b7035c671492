package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/conf"
	"gopkg.in/yaml.v3"
)

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	varPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	yamlErrorLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Parse validates and compiles a rules file. file names it in diagnostics. On any error it
// returns a nil Set and Errors holding every problem found, sorted by position.
func Parse(file string, data []byte) (*Set, error) {
	p := &parser{file: file, src: data, varUses: map[string]int{}}
	sum := sha256.Sum256(data)
	set := &Set{Path: file, Revision: hex.EncodeToString(sum[:])}
	p.parse(set)
	if len(p.errs) > 0 {
		sortDiagnostics(p.errs)
		return nil, Errors(p.errs)
	}
	set.Warnings = p.lint(set)
	return set, nil
}

type parser struct {
	file     string
	src      []byte
	errs     []Diagnostic
	vars     map[string]any
	varPos   map[string]Pos
	varUses  map[string]int
	varsNode *yaml.Node

	schedules []*Schedule // for open("NAME")
	readsTime bool        // some expression reads now, open or $env

	exprConfs [2]*conf.Config // for compileExpr: template parts, whens
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, Diagnostic{File: p.file, Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func at(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

func (p *parser) parse(set *Set) {
	var doc yaml.Node
	if err := yaml.Unmarshal(p.src, &doc); err != nil {
		p.yamlError(err)
		return
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || resolve(doc.Content[0]).Tag == "!!null" {
		p.errorf(Pos{1, 1}, "the file is empty; it needs at least `version: 1` and `rules:`")
		return
	}
	root := resolve(doc.Content[0])
	top, ok := p.mapping(root, "the file", topKeys)
	if !ok {
		return
	}
	if v, ok := top["version"]; !ok {
		p.errorf(at(root), "version is missing; add `version: 1` at the top")
	} else if v.value.Kind != yaml.ScalarNode || v.value.Value != "1" {
		p.errorf(at(v.value), "version must be 1, not %s", nodeText(v.value))
	}
	set.Timezone = time.UTC
	if e, ok := top["timezone"]; ok {
		if loc := p.parseZone(e, ""); loc != nil {
			set.Timezone = loc
		}
	}
	if e, ok := top["schedules"]; ok {
		set.Schedules = p.parseSchedules(e.value, set.Timezone)
		p.schedules = set.Schedules
	}
	if v, ok := top["vars"]; ok {
		p.parseVars(v.value)
	}
	set.Vars = p.vars
	if set.Vars == nil {
		set.Vars = map[string]any{}
	}
	// A file must say `rules:`, and an empty list only in so many words: a file cut short
	// while it is written (a prefix with no rules yet) must not load as "no rules".
	switch v, ok := top["rules"]; {
	case !ok:
		p.errorf(at(root), "rules is missing; add `rules:` with the list of rules, or `rules: []` to decide every callback by default")
	case v.value.Kind == yaml.ScalarNode && v.value.Tag == "!!null":
		p.errorf(at(v.key), "rules has no list; list the rules under it, or write `rules: []` to decide every callback by default")
	default:
		set.Rules = p.parseRules(v.value)
	}
	set.Default = p.parseFallback(top, "default")
	set.OnError = p.parseFallback(top, "on_error")
	set.ReadsTime = p.readsTime
}

// yamlError turns a YAML syntax error into diagnostics; yaml.v3 gives lines but no columns.
func (p *parser) yamlError(err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		line := 1
		m = strings.TrimPrefix(m, "yaml: ")
		if sm := yamlErrorLine.FindStringSubmatch("yaml: " + m); sm != nil {
			line, _ = strconv.Atoi(sm[1])
			m = sm[2]
		}
		p.errorf(Pos{line, 1}, "invalid YAML: %s", m)
	}
}

// entry is one key of a mapping with its value.
type entry struct {
	key, value *yaml.Node
}

// mapping checks that n is a mapping whose keys are all in allowed, each at most once, and
// returns its entries by key. where names the mapping in messages.
func (p *parser) mapping(n *yaml.Node, where string, keys []Key) (map[string]entry, bool) {
	return p.mappingOf(n, where, keyNames(keys))
}

// mappingOf is mapping for keys that are not in a key table: an instruction's fields.
func (p *parser) mappingOf(n *yaml.Node, where string, allowed []string) (map[string]entry, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(at(n), "%s must be a mapping with keys %s, not %s", where, strings.Join(allowed, ", "), nodeText(n))
		return nil, false
	}
	out := make(map[string]entry, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		switch {
		case !slices.Contains(allowed, k.Value):
			p.errorf(at(k), "unknown key %q in %s; valid keys are %s%s", k.Value, where, strings.Join(allowed, ", "), suggest(k.Value, allowed))
		case out[k.Value].key != nil:
			p.errorf(at(k), "%s appears twice in %s (first at line %d)", k.Value, where, out[k.Value].key.Line)
		default:
			out[k.Value] = entry{k, v}
		}
	}
	return out, true
}

func (p *parser) parseVars(n *yaml.Node) {
	p.vars = map[string]any{}
	p.varPos = map[string]Pos{}
	p.varsNode = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(at(n), "vars must be a mapping of NAME: value, not %s", nodeText(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if !varPattern.MatchString(k.Value) {
			p.errorf(at(k), "var name %q must be letters, digits and _ (not starting with a digit), so that vars.NAME works in expressions", k.Value)
			continue
		}
		if _, dup := p.vars[k.Value]; dup {
			p.errorf(at(k), "var %s is defined twice (first at line %d)", k.Value, p.varPos[k.Value].Line)
			continue
		}
		var val any
		if err := v.Decode(&val); err != nil {
			p.errorf(at(v), "var %s: %v", k.Value, err)
			continue
		}
		p.vars[k.Value] = val
		p.varPos[k.Value] = at(k)
	}
}

func (p *parser) parseRules(n *yaml.Node) []*Rule {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(at(n), "rules must be a list of rules (each starting with `- name:`), not %s", nodeText(n))
		return nil
	}
	var out []*Rule
	seen := map[string]Pos{}
	for i, rn := range n.Content {
		rn = resolve(rn)
		where := fmt.Sprintf("rule %d", i+1)
		m, ok := p.mapping(rn, where, ruleKeys)
		if !ok {
			continue
		}
		r := &Rule{Pos: at(rn)}
		if e, ok := m["name"]; !ok {
			p.errorf(at(rn), "%s has no name; add `name:` (lower-case letters, digits and -)", where)
		} else if e.value.Kind != yaml.ScalarNode || !namePattern.MatchString(e.value.Value) {
			p.errorf(at(e.value), "rule name %s must be lower-case letters, digits and - (like vip-voice), starting with a letter or digit", nodeText(e.value))
		} else if first, dup := seen[e.value.Value]; dup {
			p.errorf(at(e.value), "rule name %q is used twice (first at line %d); names must be unique", e.value.Value, first.Line)
			where = "rule " + e.value.Value
		} else {
			r.Name = e.value.Value
			seen[r.Name] = at(e.value)
			where = "rule " + r.Name
		}
		if e, ok := m["description"]; ok {
			if e.value.Kind != yaml.ScalarNode {
				p.errorf(at(e.value), "description of %s must be text, not %s", where, nodeText(e.value))
			}
			r.Description = e.value.Value
		}
		if e, ok := m["when"]; !ok {
			p.errorf(at(rn), "%s has no when; add a condition, or `when: true` to match every callback", where)
		} else if e.value.Kind != yaml.ScalarNode || e.value.Tag == "!!null" || strings.TrimSpace(e.value.Value) == "" {
			p.errorf(at(e.value), "when of %s must be an expression (like task.attributes.vip == true), not %s", where, nodeText(e.value))
		} else {
			r.When = e.value.Value
			r.WhenPos = p.exprStart(e.value)
			r.Program = p.compileWhen(e.value, where)
		}
		r.Action = p.parseAction(m, rn, where)
		r.Action.Name = r.Name
		out = append(out, r)
	}
	return out
}

func (p *parser) parseFallback(top map[string]entry, key string) *Action {
	e, ok := top[key]
	if !ok {
		return &Action{Name: key, Do: Defer, Via: Response}
	}
	m, ok := p.mapping(e.value, key, actionKeys)
	if !ok {
		return &Action{Name: key, Do: Defer, Via: Response}
	}
	a := p.parseAction(m, e.value, key)
	a.Name = key
	return &a
}

// parseAction reads do, with, via and delay of a rule, default or on_error.
func (p *parser) parseAction(m map[string]entry, owner *yaml.Node, where string) Action {
	a := Action{Via: Response, Pos: at(owner)}
	doEntry, ok := m["do"]
	if !ok {
		p.errorf(at(owner), "%s has no do; add one of %s", where, strings.Join(DoValues(), ", "))
		return a
	}
	a.Pos = at(doEntry.key)
	a.Do = doEntry.value.Value
	var in *Instruction
	if a.Do != Defer {
		in = Lookup(a.Do)
		if in == nil || doEntry.value.Kind != yaml.ScalarNode {
			p.errorf(at(doEntry.value), "unknown instruction %s in %s; do must be one of %s%s", nodeText(doEntry.value), where, strings.Join(DoValues(), ", "), suggest(a.Do, DoValues()))
			return a
		}
	}

	viaEntry, hasVia := m["via"]
	if hasVia {
		switch v := viaEntry.value.Value; v {
		case string(Response), string(REST):
			a.Via = Via(v)
		default:
			p.errorf(at(viaEntry.value), "%s: via must be response or rest, not %s", where, nodeText(viaEntry.value))
		}
	}
	if e, ok := m["delay"]; ok {
		d, err := time.ParseDuration(e.value.Value)
		switch {
		case e.value.Kind != yaml.ScalarNode || err != nil:
			p.errorf(at(e.value), "%s: delay must be a duration like 2s or 500ms, not %s", where, nodeText(e.value))
		case d < 0:
			p.errorf(at(e.value), "%s: delay must not be negative", where)
		case hasVia && a.Via == Response:
			p.errorf(at(viaEntry.value), "%s says via: response but has a delay; a delay is carried out by REST, so remove via or use via: rest", where)
		default:
			a.Delay, a.DelayPos = d, at(e.value)
			a.Via = REST
		}
	}

	withEntry, hasWith := m["with"]
	if a.Do == Defer {
		for _, k := range []string{"with", "via", "delay"} {
			if e, ok := m[k]; ok {
				p.errorf(at(e.key), "%s: do: defer takes no %s (it answers {} and leaves the reservation pending); remove %s", where, k, k)
			}
		}
		a.Via = Response
		a.Delay = 0
		return a
	}

	given := map[string]bool{}
	if hasWith && !(withEntry.value.Kind == yaml.ScalarNode && withEntry.value.Tag == "!!null") {
		if len(in.Fields) == 0 {
			p.errorf(at(withEntry.key), "%s: %s takes no fields under with; remove with", where, in.Name)
			return a
		}
		wm, _ := p.mappingOf(withEntry.value, where+" with", in.FieldNames())
		for i := range in.Fields {
			f := &in.Fields[i]
			e, ok := wm[f.Name]
			if !ok {
				continue
			}
			given[f.Name] = true
			if prm, ok := p.parseParam(f, e.value, where); ok {
				a.With = append(a.With, prm)
			}
		}
	}
	for _, f := range in.Fields {
		if f.Required && !given[f.Name] {
			p.errorf(a.Pos, "%s: %s needs %s under with: %s", where, in.Name, f.Name, f.want())
		}
	}
	if in.Name == "dequeue" && a.Via == REST && !given["from"] {
		p.errorf(a.Pos, "%s: dequeue via rest needs from under with: the Reservations REST API requires DequeueFrom", where)
	}
	return a
}

// parseParam reads one `with` value: a literal checked now, or a template compiled now.
func (p *parser) parseParam(f *Field, n *yaml.Node, where string) (Param, bool) {
	prm := Param{Field: f, Pos: at(n)}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "${") {
		t, ok := p.compileTemplate(f, n, where)
		if !ok {
			return prm, false
		}
		if v, isConst, err := t.constant(p.vars); isConst {
			if err != nil {
				p.errorf(at(n), "%s: %s", where, err)
				return prm, false
			}
			nv, err := f.Normalize(v, true)
			if err != nil {
				p.errorf(at(n), "%s: %s (from %s)", where, err, strings.TrimSpace(t.Source))
				return prm, false
			}
			prm.Const, prm.Value = true, nv
			return prm, true
		}
		prm.Tmpl = t
		return prm, true
	}
	var v any
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		p.errorf(at(n), "%s: %s has no value; give one (%s) or remove the key", where, f.Name, f.want())
		return prm, false
	case n.Kind == yaml.ScalarNode && (f.Kind == String || f.Kind == Address || f.Kind == URL || f.Kind == SID):
		// Take the text as written: YAML would read an unquoted +15005550006 as a number.
		v = n.Value
	default:
		if err := n.Decode(&v); err != nil {
			p.errorf(at(n), "%s: %s: %v", where, f.Name, err)
			return prm, false
		}
	}
	nv, err := f.Normalize(v, true)
	if err != nil {
		p.errorf(at(n), "%s: %s", where, err)
		return prm, false
	}
	prm.Const, prm.Value = true, nv
	return prm, true
}

// exprStart is where the text of a scalar begins in the file.
func (p *parser) exprStart(n *yaml.Node) Pos {
	pos := at(n)
	switch n.Style {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		pos.Col++
	case yaml.LiteralStyle, yaml.FoldedStyle:
		pos.Line++
		lines := bytes.Split(p.src, []byte("\n"))
		if pos.Line-1 < len(lines) {
			l := lines[pos.Line-1]
			pos.Col = len(l) - len(bytes.TrimLeft(l, " ")) + 1
		}
	}
	return pos
}

// resolve follows YAML aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// nodeText describes a node for messages: its value if scalar, else its kind.
func nodeText(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return strconv.Quote(n.Value)
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "empty"
}

// suggest offers the closest valid word for a likely typo.
func suggest(got string, valid []string) string {
	best, bestD := "", 3
	for _, v := range valid {
		if d := distance(got, v); d < bestD {
			best, bestD = v, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
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
