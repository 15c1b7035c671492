package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
)

// lint finds what is valid but likely wrong, and needs nothing from outside the file: rules
// that can never match, vars never used, calls and redirects by REST that a repeated
// delivery would carry out twice, and accept rules that take voice tasks from a dequeue or
// conference rule below them (docs/rules.md, "Lints").
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
	out = append(out, repeatedByREST(set)...)
	out = append(out, acceptsVoice(set)...)
	sortDiagnostics(out)
	return out
}

// Lint returns the set's warnings and those that depend on the Workflow the file serves:
// a delay at or beyond its reservation timeout, after which TaskRouter has moved on and the
// action can only be abandoned. A reservationTimeout of 0 skips that check. Nothing here
// depends on the environment, so check gives the same answer on every machine.
func (s *Set) Lint(reservationTimeout time.Duration) []Diagnostic {
	out := slices.Clone(s.Warnings)
	if reservationTimeout > 0 {
		for _, a := range s.RESTActions() {
			if a.Delay >= reservationTimeout {
				out = append(out, Diagnostic{File: s.Path, Pos: a.DelayPos, Warning: true,
					Msg: fmt.Sprintf("%s: delay %s is not shorter than the reservation timeout (%s, --reservation-timeout): the reservation times out first, so the action is always abandoned; shorten the delay, or raise the Workflow's TaskReservationTimeout and --reservation-timeout with it", s.owner(a), a.Delay, reservationTimeout)})
			}
		}
	}
	sortDiagnostics(out)
	return out
}

// repeatedByREST warns of a call or redirect carried out by REST without accept: true. The
// outbox delivers at least once, and TaskRouter carries out a second call or redirect for a
// reservation that is still pending; with accept: true the first one accepts it, and a
// repeat is refused as no longer pending.
func repeatedByREST(set *Set) []Diagnostic {
	var out []Diagnostic
	for _, a := range set.RESTActions() {
		var repeat string
		switch a.Do {
		case "call":
			repeat = "places a second call to the worker"
		case "redirect":
			repeat = "redirects the call a second time"
		default:
			continue
		}
		pos := a.Pos
		if prm := a.Param("accept"); prm != nil {
			if prm.Const && prm.Value == true {
				continue
			}
			pos = prm.Pos
		}
		out = append(out, Diagnostic{File: set.Path, Pos: pos, Warning: true,
			Msg: fmt.Sprintf("%s: %s by REST without accept: true: the outbox delivers at least once, and a repeat while the reservation is still pending %s; add accept: true under with, so that TaskRouter refuses a repeat as no longer pending", set.owner(a), a.Do, repeat)})
	}
	return out
}

// acceptsVoice warns of an accept rule that can take a voice task from a dequeue or
// conference rule below it: accept does not connect a call that waits in a queue, so the
// caller would stay on hold. A rule's when keeps voice tasks out when one of its top-level
// && terms is task.attributes.call_sid == nil (or !(task.attributes.call_sid != nil)):
// TaskRouter gives every task created by <Enqueue> a call_sid.
func acceptsVoice(set *Set) []Diagnostic {
	var out []Diagnostic
	for i, r := range set.Rules {
		if r.Do != "accept" || excludesVoice(r.Program.Node()) {
			continue
		}
		for _, below := range set.Rules[i+1:] {
			if below.Do != "dequeue" && below.Do != "conference" {
				continue
			}
			out = append(out, Diagnostic{File: set.Path, Pos: r.WhenPos, Warning: true,
				Msg: fmt.Sprintf("rule %s accepts voice tasks too: its when does not exclude tasks with a call_sid, and accept does not connect a queued call, so the caller stays on hold while rule %s below it (%s) would have connected them; start the when with task.attributes.call_sid == nil &&, or move %s below the voice rules", r.Name, below.Name, below.Do, r.Name)})
			break
		}
	}
	return out
}

// excludesVoice reports whether a when is false for every task with a call_sid: it is
// false, or one of its top-level && terms says call_sid is nil.
func excludesVoice(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.BoolNode:
		return !x.Value
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and":
			return excludesVoice(x.Left) || excludesVoice(x.Right)
		case "==":
			return comparesCallSidWithNil(x)
		}
	case *ast.UnaryNode:
		if b, ok := x.Node.(*ast.BinaryNode); ok && (x.Operator == "!" || x.Operator == "not") && b.Operator == "!=" {
			return comparesCallSidWithNil(b)
		}
	}
	return false
}

// comparesCallSidWithNil reports whether b compares task.attributes.call_sid with nil.
func comparesCallSidWithNil(b *ast.BinaryNode) bool {
	_, leftNil := b.Left.(*ast.NilNode)
	_, rightNil := b.Right.(*ast.NilNode)
	return (isCallSid(b.Left) && rightNil) || (leftNil && isCallSid(b.Right))
}

// isCallSid reports whether n reads task.attributes.call_sid (with . or ?.).
func isCallSid(n ast.Node) bool {
	if c, ok := n.(*ast.ChainNode); ok {
		n = c.Node
	}
	want := []string{"call_sid", "attributes"}
	for _, key := range want {
		m, ok := n.(*ast.MemberNode)
		if !ok {
			return false
		}
		s, ok := m.Property.(*ast.StringNode)
		if !ok || s.Value != key || m.Method {
			return false
		}
		n = m.Node
	}
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == "task"
}

// owner names an action in messages: "rule NAME", "default" or "on_error".
func (s *Set) owner(a *Action) string {
	if a == s.Default || a == s.OnError {
		return a.Name
	}
	return "rule " + a.Name
}
