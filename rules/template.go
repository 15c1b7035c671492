package rules

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

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
			p.checkTime(prog, exprPos, src, where+": "+f.Name)
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
