package rules

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// maxExprLen bounds the source of one expression (a when, or one ${ } of a template).
// expr parses brackets and prefix operators by recursion before it counts nodes, and a Go
// program that runs out of stack dies: without a bound, a rules file (or a playground
// draft) of a few hundred thousand "(" would crash the process reading it. No condition
// worth reading is this long; long lists belong in vars.
const maxExprLen = 8 << 10

// tooLong reports an expression over maxExprLen.
func (p *parser) tooLong(pos Pos, src, where string) bool {
	if len(src) <= maxExprLen {
		return false
	}
	p.errorf(pos, "%s: the expression is %d bytes long; at most %d are allowed (keep long lists in vars)", where, len(src), maxExprLen)
	return true
}

// compileWhen compiles a rule's condition; it must be boolean.
func (p *parser) compileWhen(n *yaml.Node, where string) *vm.Program {
	start := p.exprStart(n)
	if p.tooLong(start, n.Value, "when of "+where) {
		return nil
	}
	prog, err := p.compileExpr(n.Value, true)
	if err != nil {
		p.exprError(start, n.Value, "when of "+where, err)
		return nil
	}
	p.checkVars(prog, start)
	return prog
}

// compileTemplate splits a `with` value into text and `${ }` parts and compiles each part.
func (p *parser) compileTemplate(f *Field, n *yaml.Node, where string) (*Template, bool) {
	start := p.exprStart(n)
	t := &Template{Source: n.Value}
	s := n.Value
	offset := 0 // of s within n.Value, to place errors
	ok := true
	for s != "" {
		i := strings.Index(s, "${")
		if i < 0 {
			t.Parts = append(t.Parts, Part{Text: s})
			break
		}
		if i > 0 {
			t.Parts = append(t.Parts, Part{Text: s[:i]})
		}
		end := closingBrace(s[i+2:])
		if end < 0 {
			p.errorf(shift(start, n.Value, offset+i), "%s: %s: ${ is not closed; end the expression with }", where, f.Name)
			return nil, false
		}
		src := s[i+2 : i+2+end]
		exprPos := shift(start, n.Value, offset+i+2)
		if strings.TrimSpace(src) == "" {
			p.errorf(exprPos, "%s: %s: ${ } is empty; put an expression inside, like ${ task.attributes.name }", where, f.Name)
			ok = false
		} else if p.tooLong(exprPos, src, where+": "+f.Name) {
			ok = false
		} else if prog, err := p.compileExpr(src, false); err != nil {
			p.exprError(exprPos, src, where+": "+f.Name, err)
			ok = false
		} else {
			p.checkVars(prog, exprPos)
			t.Parts = append(t.Parts, Part{Program: prog})
		}
		consumed := i + 2 + end + 1
		s = s[consumed:]
		offset += consumed
	}
	if !ok {
		return nil, false
	}
	t.Typed = len(t.Parts) == 1 && t.Parts[0].Program != nil
	if t.Typed {
		if msg := typeMismatch(f, t.Parts[0].Program.Node().Type()); msg != "" {
			p.errorf(start, "%s: %s", where, msg)
			return nil, false
		}
	} else if f.Kind == Int || f.Kind == Bool {
		p.errorf(start, "%s: %s must be %s; text around ${ } makes a string, so write the ${ expression } alone", where, f.Name, f.want())
		return nil, false
	}
	return t, true
}

// closingBrace finds the } that ends an expression, skipping braces and quotes inside it.
func closingBrace(s string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

// shift moves pos by the first off bytes of the scalar text s.
func shift(pos Pos, s string, off int) Pos {
	pre := s[:off]
	if nl := strings.LastIndexByte(pre, '\n'); nl >= 0 {
		// Later lines of a block scalar are indented like its first.
		return Pos{Line: pos.Line + strings.Count(pre, "\n"), Col: pos.Col - 1 + len(pre) - nl}
	}
	return Pos{Line: pos.Line, Col: pos.Col + len(pre)}
}

// typeMismatch says why an expression of static type t cannot fill f, or "" if it can or if
// t is only known at run time.
func typeMismatch(f *Field, t reflect.Type) string {
	if t == nil || t.Kind() == reflect.Interface {
		return ""
	}
	k := t.Kind()
	ok := true
	switch f.Kind {
	case String, Address, URL, SID:
		ok = k == reflect.String
	case Int:
		ok = (k >= reflect.Int && k <= reflect.Uint64) || k == reflect.Float32 || k == reflect.Float64
	case Bool:
		ok = k == reflect.Bool
	case Enum:
		ok = k == reflect.String || k == reflect.Bool
	case List:
		ok = k == reflect.String || k == reflect.Slice || k == reflect.Array
	}
	if ok {
		return ""
	}
	return fmt.Sprintf("%s must be %s, but the expression gives %s", f.Name, f.want(), typeName(t))
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a number"
	}
	return t.String()
}

// exprError reports a compile error at its place in the file, in words a rules author knows.
func (p *parser) exprError(start Pos, src, where string, err error) {
	var fe *file.Error
	pos, msg := start, err.Error()
	if errors.As(err, &fe) {
		msg = fe.Message
		if fe.Line > 0 {
			lines := strings.Split(src, "\n")
			off := 0
			for i := 0; i < fe.Line-1 && i < len(lines); i++ {
				off += len(lines[i]) + 1
			}
			off += fe.Column
			if off <= len(src) {
				pos = shift(start, src, off)
			}
		}
	}
	p.errorf(pos, "%s: %s", where, explain(msg))
}

// explain rewrites expr's messages, which speak of Go types, in terms of rules.yaml.
func explain(msg string) string {
	for goType, fields := range envFields {
		if strings.HasPrefix(msg, "type "+goType+" has no field ") {
			name := strings.TrimPrefix(msg, "type "+goType+" has no field ")
			obj := strings.ToLower(strings.TrimPrefix(goType, "rules."))
			if obj == "env" {
				return fmt.Sprintf("unknown name %s; the names are %s", name, fields)
			}
			return fmt.Sprintf("%s has no field %s; it has %s (attributes go under %s.attributes)", obj, name, fields, obj)
		}
	}
	if strings.HasPrefix(msg, "unknown name ") {
		return msg + "; the names are " + envFields["rules.Env"]
	}
	if strings.HasPrefix(msg, "expected bool, but got ") {
		return "when must be true or false, but this expression gives " + strings.TrimPrefix(msg, "expected bool, but got ") + "; compare it, like x == 1"
	}
	return strings.ReplaceAll(msg, "rules.", "")
}

// checkVars records which vars an expression uses and reports unknown ones.
func (p *parser) checkVars(prog *vm.Program, start Pos) {
	root := prog.Node()
	ast.Walk(&root, visitor(func(n ast.Node) {
		name, ok := varRef(n)
		if !ok {
			return
		}
		if _, defined := p.vars[name]; !defined {
			known := make([]string, 0, len(p.vars))
			for k := range p.vars {
				known = append(known, k)
			}
			sort.Strings(known)
			have := "there are no vars"
			if len(known) > 0 {
				have = "defined vars are " + strings.Join(known, ", ")
			}
			p.errorf(start, "vars.%s is not defined; %s%s", name, have, suggest(name, known))
			return
		}
		p.varUses[name]++
	}))
}

// varRef reports whether n is vars.NAME (or vars["NAME"]) and returns NAME.
func varRef(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "vars" {
		return "", false
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return s.Value, true
}

type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }

// constant evaluates a template that depends on nothing but vars and literals. isConst is
// false when it reads the callback.
func (t *Template) constant(vars map[string]any) (v any, isConst bool, err error) {
	for _, part := range t.Parts {
		if part.Program != nil && !isConstant(part.Program) {
			return nil, false, nil
		}
	}
	v, err = t.Eval(&vm.VM{}, &Env{Vars: vars})
	return v, true, err
}

// isConstant reports whether an expression reads only vars and literals.
func isConstant(prog *vm.Program) bool {
	constant := true
	root := prog.Node()
	ast.Walk(&root, visitor(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.IdentifierNode:
			if x.Value != "vars" {
				constant = false
			}
		case *ast.CallNode, *ast.BuiltinNode, *ast.PointerNode, *ast.VariableDeclaratorNode, *ast.PredicateNode:
			constant = false
		}
	}))
	return constant
}

// Eval renders the template for one callback. A typed template returns its expression's
// value; a text template returns a string, or nil if any part is nil (so an optional field is
// left out rather than sent with a hole in it).
func (t *Template) Eval(machine *vm.VM, env *Env) (any, error) {
	if t.Typed {
		return machine.Run(t.Parts[0].Program, env)
	}
	var b strings.Builder
	for _, part := range t.Parts {
		if part.Program == nil {
			b.WriteString(part.Text)
			continue
		}
		v, err := machine.Run(part.Program, env)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, nil
		}
		b.WriteString(Format(v))
	}
	return b.String(), nil
}

// Format writes a value into text the way a person expects: 42 not 4.2e+01.
func Format(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		if n, ok := asInt(x); ok {
			return fmt.Sprint(n)
		}
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = Format(e)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// lint finds rules that can never match and vars that are never used.
func (p *parser) lint(set *Set) []Diagnostic {
	var out []Diagnostic
	var always *Rule
	for _, r := range set.Rules {
		if always != nil {
			out = append(out, Diagnostic{File: p.file, Pos: r.Pos, Warning: true,
				Msg: fmt.Sprintf("rule %s can never match: rule %s above it always matches (when: %s); move it above %s or remove it", r.Name, always.Name, strings.TrimSpace(always.When), always.Name)})
			continue
		}
		if b, ok := r.Program.Node().(*ast.BoolNode); ok && b.Value {
			always = r
		}
	}
	names := make([]string, 0, len(p.vars))
	for k := range p.vars {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if p.varUses[k] == 0 {
			out = append(out, Diagnostic{File: p.file, Pos: p.varPos[k], Warning: true,
				Msg: fmt.Sprintf("var %s is never used; use it as ${ vars.%s } or remove it", k, k)})
		}
	}
	sortDiagnostics(out)
	return out
}

// Lint returns the set's warnings plus those that depend on the environment: rules that send
// by REST while no Twilio credentials are configured.
func (s *Set) Lint(haveCredentials bool) []Diagnostic {
	out := slices.Clone(s.Warnings)
	if !haveCredentials {
		for _, a := range s.Actions() {
			if a.Via == REST {
				out = append(out, Diagnostic{File: s.Path, Pos: a.Pos, Warning: true,
					Msg: fmt.Sprintf("%s sends by REST but no Twilio credentials are set (TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET); its actions would only be logged as dry-run", a.Name)})
			}
		}
	}
	sortDiagnostics(out)
	return out
}

// Actions lists every rule's action, then default and on_error.
func (s *Set) Actions() []*Action {
	out := make([]*Action, 0, len(s.Rules)+2)
	for _, r := range s.Rules {
		out = append(out, &r.Action)
	}
	return append(out, s.Default, s.OnError)
}

// Rule returns the named rule, or nil.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}
