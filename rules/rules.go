// Package rules reads and validates rules.yaml: the ordered rules that decide TaskRouter
// assignment callbacks (docs/rules.md). Parse compiles every expression once; the result is
// immutable and safe to share between goroutines. The package does no I/O beyond the bytes
// it is handed.
package rules

import (
	"time"

	"github.com/expr-lang/expr/vm"
)

// Via says how a decision reaches TaskRouter.
type Via string

// The two ways a decision is carried out.
const (
	Response Via = "response" // as the synchronous answer to the callback
	REST     Via = "rest"     // as {} now and a Reservations REST call afterwards
)

// Set is a validated, compiled rules file.
type Set struct {
	Path     string         // the file, as named to Parse
	Revision string         // sha256 of the file, hex
	Vars     map[string]any // the file's vars, read-only
	Rules    []*Rule        // in file order: the first match decides
	Default  *Action        // when no rule matches
	OnError  *Action        // when the callback cannot be decided
	Warnings []Diagnostic   // lint findings that need no outside knowledge

	// Timezone is the file's timezone, the zone `now` is given in: UTC unless it says.
	Timezone *time.Location
	// Schedules are the file's schedules, in file order, for open("NAME").
	Schedules []*Schedule
	// ReadsTime says that some expression reads the callback's time (now, open, or the
	// whole environment): its decisions depend on the callback's Timestamp.
	ReadsTime bool
}

// Rule is one entry of `rules`.
type Rule struct {
	Name        string
	Description string
	Pos         Pos         // the rule's first key
	When        string      // the expression as written
	WhenPos     Pos         // where the expression starts
	Program     *vm.Program // the compiled `when`, shared by all goroutines
	Action
}

// Action is what a rule, default or on_error does.
type Action struct {
	Name  string // the rule's name, "default" or "on_error"
	Do    string // "defer" or an Instruction name
	Via   Via
	Delay time.Duration
	With  []Param // in the instruction table's order
	Pos   Pos     // the `do` key
	// DelayPos is where the delay is written, when it is.
	DelayPos Pos
}

// Instruction returns the action's instruction, or nil for defer.
func (a *Action) Instruction() *Instruction { return Lookup(a.Do) }

// Param is one field under `with`: a constant, or a template evaluated per callback.
type Param struct {
	Field *Field
	Pos   Pos
	Const bool // Value is fixed at load
	Value any  // the normalised value (string, int, bool or []string), when Const
	Tmpl  *Template
}

// Template is a `with` value that depends on the callback: text with `${ expr }` parts. A
// template that is exactly one `${ }` keeps its expression's type (Typed).
type Template struct {
	Source string
	Parts  []Part
	Typed  bool
}

// Part is literal text or one compiled expression of a template.
type Part struct {
	Text    string
	Program *vm.Program
}

// Actions lists every rule's action, then default and on_error.
func (s *Set) Actions() []*Action {
	out := make([]*Action, 0, len(s.Rules)+2)
	for _, r := range s.Rules {
		out = append(out, &r.Action)
	}
	return append(out, s.Default, s.OnError)
}

// Param returns the action's named `with` field, or nil when the file does not give it.
func (a *Action) Param(name string) *Param {
	for i := range a.With {
		if a.With[i].Field.Name == name {
			return &a.With[i]
		}
	}
	return nil
}

// RESTActions lists the actions that are carried out by REST: a rule, default or on_error
// whose via is rest, or that has a delay, and whose do is not defer.
func (s *Set) RESTActions() []*Action {
	var out []*Action
	for _, a := range s.Actions() {
		if a.Via == REST && a.Do != Defer {
			out = append(out, a)
		}
	}
	return out
}

// Schedule returns the named schedule, or nil.
func (s *Set) Schedule(name string) *Schedule {
	for _, sc := range s.Schedules {
		if sc.Name == name {
			return sc
		}
	}
	return nil
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
