package engine

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/reservist/reservist/rules"
)

// problem is an error in two wordings. Error, which the log gets, never quotes a value from
// the callback: attributes hold personal data. detail, which the trace of explain and the
// playground shows to the operator, may. Expressions' run-time errors and the needs checks
// are problems; a value that a field refuses is still quoted in Decision.Err as the field
// words it (rules.Field.Normalize), and the server's log redacts it.
type problem struct {
	msg, detail string
}

func (p *problem) Error() string { return p.msg }

// detail is err in the trace's wording.
func detail(err error) string {
	if p, ok := err.(*problem); ok {
		return p.detail
	}
	return err.Error()
}

// prefixed puts the same words before both wordings of err.
func prefixed(prefix string, err error) error {
	return &problem{msg: prefix + err.Error(), detail: prefix + detail(err)}
}

// runError restates an expression's run-time error in terms of what the rules author wrote:
// which attribute (or var or parameter) held what type, and what the expression did with it
// ("worker.attributes.open_chats is a string ("3"), compared with an int" rather than expr's
// "invalid operation: string >= int"). It finds the failing node by the position expr
// reports and reads the operands' values from env again. What it cannot place keeps expr's
// own message, on one line.
func runError(prog *vm.Program, env *rules.Env, err error) error {
	fe, ok := errors.AsType[*file.Error](err)
	if !ok {
		return err
	}
	plain := errors.New(fe.Message)
	if prog == nil {
		return plain
	}
	root := prog.Node()
	var at []ast.Node
	ast.Walk(&root, visit(func(n ast.Node) {
		if n.Location().From == fe.From {
			at = append(at, n)
		}
	}))
	for _, n := range at {
		if p := explainAt(n, root, env, fe.Message); p != nil {
			return p
		}
	}
	if strings.HasPrefix(fe.Message, "invalid operation: bool(") || strings.HasPrefix(fe.Message, "interface conversion: interface {} is ") {
		// A value used as true or false: expr reports these without a usable position.
		for _, n := range boolOperands(root) {
			if o, ok := operandOf(n, env); ok {
				if _, isBool := o.value.(bool); !isBool {
					return o.says("", "but true or false is needed there")
				}
			}
		}
	}
	return plain
}

// binaryTypes reads expr's "invalid operation: TYPE OP TYPE"; a type may have spaces in it
// ([]interface {}).
var binaryTypes = regexp.MustCompile(`^invalid operation: (.+?) (<=|>=|<|>|\*\*|[-+*/%^]|\.\.) (.+)$`)

// explainAt words the error at node n, or returns nil when n is not what failed.
func explainAt(n, root ast.Node, env *rules.Env, msg string) *problem {
	switch x := n.(type) {
	case *ast.BinaryNode:
		left, lok := operandOf(x.Left, env)
		right, rok := operandOf(x.Right, env)
		if sm := binaryTypes.FindStringSubmatch(msg); sm != nil && sm[2] == x.Operator {
			verb := "used in " + x.Operator + " with"
			switch x.Operator {
			case "<", ">", "<=", ">=":
				verb = "compared with"
			}
			switch {
			case lok && rok:
				p := left.says(right.name+", "+jsonType(right.value), verb)
				p.detail = fmt.Sprintf("%s is %s, %s %s, %s", left.name, left.kind(), verb, right.name, right.kind())
				return p
			case lok:
				return left.says(goType(sm[3]), verb)
			case rok:
				return right.says(goType(sm[1]), verb)
			}
			return nil
		}
		switch x.Operator {
		case "in", "not in":
			if rok && strings.HasPrefix(msg, "operator ") {
				return right.says("", "not a list or an object, so "+x.Operator+" cannot look into it")
			}
		case "contains", "startsWith", "endsWith", "matches":
			for _, o := range []operand{left, right} {
				if _, isString := o.value.(string); o.name != "" && !isString {
					return o.says("", "but "+x.Operator+" takes strings")
				}
			}
		}
	case *ast.UnaryNode:
		if o, ok := operandOf(x.Node, env); ok && (x.Operator == "!" || x.Operator == "not") {
			if _, isBool := o.value.(bool); !isBool {
				return o.says("", "but "+x.Operator+" takes true or false")
			}
		}
	case *ast.MemberNode:
		key, isKey := x.Property.(*ast.StringNode)
		o, ok := operandOf(x.Node, env)
		if !isKey || !ok {
			return nil
		}
		if o.value == nil {
			msg := fmt.Sprintf("%s is null, so it has no %s; write %s?.%s to get null instead of an error", o.name, key.Value, o.name, key.Value)
			return &problem{msg: msg, detail: msg}
		}
		if _, isObject := o.value.(map[string]any); !isObject {
			return o.says("", "not an object, so it has no "+key.Value)
		}
	}
	return nil
}

// boolOperands are the nodes whose value must be true or false: the when itself and the
// operands of &&, ||, ! and not, outermost first.
func boolOperands(n ast.Node) []ast.Node {
	out := []ast.Node{n}
	switch x := n.(type) {
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and", "||", "or":
			out = append(out, boolOperands(x.Left)...)
			out = append(out, boolOperands(x.Right)...)
		}
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			out = append(out, boolOperands(x.Node)...)
		}
	}
	return out
}

// operand is a value the expression read by name: an attribute, a var or a parameter.
type operand struct {
	name  string // as the rules author writes it: task.attributes.customer.tier
	value any
}

// operandOf reads n when it is a path into the callback or vars (through ?? when its left
// side is what gave the value).
func operandOf(n ast.Node, env *rules.Env) (operand, bool) {
	if b, ok := n.(*ast.BinaryNode); ok && b.Operator == "??" {
		if o, ok := operandOf(b.Left, env); ok && o.value != nil {
			return o, true
		}
		return operandOf(b.Right, env)
	}
	if p, ok := pathOf(n); ok {
		v, ok := p.read(env)
		return operand{name: p.String(), value: v}, ok
	}
	return varOf(n, env)
}

// varOf reads vars.NAME and the keys below it.
func varOf(n ast.Node, env *rules.Env) (operand, bool) {
	if c, ok := n.(*ast.ChainNode); ok {
		n = c.Node
	}
	var keys []string
	for {
		switch m := n.(type) {
		case *ast.MemberNode:
			key, ok := m.Property.(*ast.StringNode)
			if !ok || m.Method {
				return operand{}, false
			}
			keys = append([]string{key.Value}, keys...)
			n = m.Node
			continue
		case *ast.IdentifierNode:
			if m.Value != "vars" || len(keys) == 0 {
				return operand{}, false
			}
			var cur any = env.Vars
			for _, k := range keys {
				obj, ok := cur.(map[string]any)
				if !ok {
					return operand{}, false
				}
				cur = obj[k]
			}
			return operand{name: "vars." + strings.Join(keys, "."), value: cur}, true
		}
		return operand{}, false
	}
}

// says words "NAME is A TYPE, VERB OTHER": the log's wording without the value, the trace's
// with it. other, which names no value, is "" when the sentence ends with verb.
func (o operand) says(other, verb string) *problem {
	tail := verb
	if other != "" {
		tail = verb + " " + other
	}
	return &problem{
		msg:    fmt.Sprintf("%s is %s, %s", o.name, jsonType(o.value), tail),
		detail: fmt.Sprintf("%s is %s, %s", o.name, o.kind(), tail),
	}
}

// kind is the operand's type with its value, for the trace: a string ("3").
func (o operand) kind() string {
	if v := shown(o.value); v != "" {
		return jsonType(o.value) + " (" + v + ")"
	}
	return jsonType(o.value)
}

// jsonType names a JSON value's type the way a rules author thinks of it.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

// shown is a scalar value as it would be written, shortened; "" for null, objects and lists.
func shown(v any) string {
	switch x := v.(type) {
	case string:
		const max = 40
		if utf8.RuneCountInString(x) > max {
			x = string([]rune(x)[:max]) + "…"
		}
		return fmt.Sprintf("%q", x)
	case bool, float64, int:
		return rules.Format(x)
	}
	return ""
}

// goType names a type of expr's messages (int, float64, string …) for people.
func goType(t string) string {
	switch t {
	case "int", "int64", "uint64":
		return "an int"
	case "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "<nil>":
		return "null"
	}
	if strings.HasPrefix(t, "map[") {
		return "an object"
	}
	if strings.HasPrefix(t, "[]") {
		return "a list"
	}
	return t
}

// visit is an ast.Visitor calling f with every node.
type visit func(ast.Node)

func (f visit) Visit(n *ast.Node) { f(*n) }
