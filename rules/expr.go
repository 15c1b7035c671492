package rules

import (
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/optimizer"

	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

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
	p.checkTime(prog, start, n.Value, "when of "+where)
	return prog
}

// compileExpr compiles one expression of the file: a `when` (boolean) or a template part.
//
// It is expr.Compile with one configuration per file and kind instead of a new one per
// expression: expr.Compile builds the whole table of builtins for every expression, which
// was about a third of the time a file of 1,000 rules took to load. The steps are
// expr.Compile's own, so the programs and the error messages are the same. A configuration
// is used by one parser only (its type cache is not safe for concurrent use).
func (p *parser) compileExpr(src string, when bool) (*vm.Program, error) {
	k := 0
	if when {
		k = 1
	}
	if p.exprConfs[k] == nil {
		opts := []expr.Option{expr.Env(Env{})}
		if when {
			opts = append(opts, expr.AsBool())
		}
		c := conf.CreateNew()
		for _, op := range opts {
			op(c)
		}
		for name := range c.Disabled {
			delete(c.Builtins, name)
		}
		c.Check()
		p.exprConfs[k] = c
	}
	config := p.exprConfs[k]
	tree, err := checker.ParseCheck(src, config)
	if err != nil {
		return nil, err
	}
	if config.Optimize {
		if err := optimizer.Optimize(&tree.Node, config); err != nil {
			var fileError *file.Error
			if errors.As(err, &fileError) {
				return nil, fileError.Bind(tree.Source)
			}
			return nil, err
		}
	}
	return compiler.Compile(tree, config)
}

// exprError reports a compile error at its place in the file, in words a rules author knows.
func (p *parser) exprError(start Pos, src, where string, err error) {
	var fe *file.Error
	pos, msg, off := start, err.Error(), 0
	if errors.As(err, &fe) {
		msg = fe.Message
		if fe.Line > 0 {
			lines := strings.Split(src, "\n")
			for i := 0; i < fe.Line-1 && i < len(lines); i++ {
				off += len(lines[i]) + 1
			}
			off += fe.Column
			if off <= len(src) {
				pos = shift(start, src, off)
			}
		}
	}
	// With now in the environment, expr reads now() as a call of the callback's time.
	if msg == "time.Time is not callable" && off <= len(src) && strings.HasPrefix(src[off:], "now") {
		msg = "now() would read the clock, so that a decision would depend on when it is made; write now, the callback's time (its Timestamp), like now.Hour() >= 9"
	}
	if strings.Contains(msg, "func(string) bool") {
		msg = `open tests a schedule: write open("NAME"); ` + p.scheduleNames()
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

var locationType = reflect.TypeOf((*time.Location)(nil))

// checkTime checks how an expression uses time, and records whether it reads the callback's
// time: open takes a literal name of one of the file's schedules, and a zone name written
// as a literal in timezone() or date() must exist. src is the expression, start where it is.
func (p *parser) checkTime(prog *vm.Program, start Pos, src, where string) {
	root := prog.Node()
	callees := map[ast.Node]bool{}
	ast.Walk(&root, visitor(func(n ast.Node) {
		if c, ok := n.(*ast.CallNode); ok {
			callees[c.Callee] = true
		}
	}))
	place := func(n ast.Node) Pos { return shift(start, src, byteOffset(src, n.Location().From)) }
	zone := func(n ast.Node, call string) {
		s, ok := n.(*ast.StringNode)
		if !ok {
			return // read at run time; an unknown zone fails the rule then
		}
		if _, msg := loadZone(s.Value); msg != "" {
			p.errorf(place(n), "%s: %s%q): %s", where, call, s.Value, msg)
		}
	}
	ast.Walk(&root, visitor(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.IdentifierNode:
			switch x.Value {
			case "now", "$env":
				p.readsTime = true
			case "open":
				p.readsTime = true
				if !callees[n] {
					p.errorf(place(n), `%s: open tests a schedule: write open("NAME"); %s`, where, p.scheduleNames())
				}
			}
		case *ast.CallNode:
			if id, ok := x.Callee.(*ast.IdentifierNode); ok && id.Value == "open" && len(x.Arguments) == 1 {
				p.checkOpen(x.Arguments[0], place(x.Arguments[0]), where)
			}
		case *ast.BuiltinNode:
			args := x.Arguments
			switch {
			case x.Name == "timezone" && len(args) == 1:
				zone(args[0], "timezone(")
			case x.Name == "date":
				if len(args) > 0 && args[0].Type() == locationType {
					args = args[1:]
				}
				if len(args) == 3 {
					zone(args[2], "date(…, ")
				}
			}
		}
	}))
}

// checkOpen checks the argument of open(): a literal naming a schedule of the file.
func (p *parser) checkOpen(arg ast.Node, pos Pos, where string) {
	s, ok := arg.(*ast.StringNode)
	if !ok {
		p.errorf(pos, `%s: open takes the name of a schedule in quotes, like open("support"), so that the name is checked when the file loads; %s`, where, p.scheduleNames())
		return
	}
	names := make([]string, len(p.schedules))
	for i, sc := range p.schedules {
		if sc.Name == s.Value {
			return
		}
		names[i] = sc.Name
	}
	p.errorf(pos, "%s: open(%q): there is no schedule %s; %s%s", where, s.Value, s.Value, p.scheduleNames(), suggest(s.Value, names))
}

// scheduleNames says which schedules the file has, for messages.
func (p *parser) scheduleNames() string {
	if len(p.schedules) == 0 {
		return "the file has no schedules (define them under schedules:)"
	}
	names := make([]string, len(p.schedules))
	for i, sc := range p.schedules {
		names[i] = sc.Name
	}
	return "the schedules are " + strings.Join(names, ", ")
}

// byteOffset turns expr's offset of a node, counted in runes, into bytes of src.
func byteOffset(src string, runes int) int {
	for i := range src {
		if runes == 0 {
			return i
		}
		runes--
	}
	return len(src)
}
