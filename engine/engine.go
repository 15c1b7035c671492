// Package engine decides assignment callbacks: callback parameters in, the first matching
// rule's instruction out, as the synchronous JSON answer and as Reservations REST parameters.
package engine

import (
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/rules"
)

// Engine decides callbacks with one rule set. It is immutable and safe for concurrent use;
// a reload builds a new Engine.
type Engine struct {
	set     *rules.Set
	index   *index
	answers map[*rules.Action][]byte // precomputed answers of actions with only constant fields
	params  bool                     // some expression reads `params`: build the map
	vms     sync.Pool

	zone      *time.Location             // the rules' timezone
	schedules map[string]*rules.Schedule // by name, for open("NAME")
}

// New prepares an engine for a parsed rule set.
func New(set *rules.Set) *Engine {
	e := &Engine{set: set, index: buildIndex(set), answers: map[*rules.Action][]byte{}, params: readsParams(set)}
	e.zone = set.Timezone
	if e.zone == nil {
		e.zone = time.UTC
	}
	e.schedules = make(map[string]*rules.Schedule, len(set.Schedules))
	for _, sc := range set.Schedules {
		e.schedules[sc.Name] = sc
	}
	e.vms.New = func() any {
		s := &scratch{clock: clock{schedules: e.schedules}}
		s.open = s.clock.open // bound once: a method value allocates
		return s
	}
	for _, a := range set.Actions() {
		if vals, ok := constantValues(a); ok {
			e.answers[a] = encodeAnswer(a, vals)
		}
	}
	return e
}

// Set returns the rules the engine decides with.
func (e *Engine) Set() *rules.Set { return e.set }

// Value is one evaluated `with` field.
type Value struct {
	Field *rules.Field
	Value any // string, int, bool or []string
}

// RuleError is a `when` that failed at run time; the rule did not match. Err names what the
// expression read and its type, never its value: it is logged.
type RuleError struct {
	Rule string
	Err  error
}

// Step is one rule tried, for explain and the trace.
type Step struct {
	Rule   string `json:"rule"`
	Result string `json:"result"` // "match", "no" or "error"
	// Error says why the when failed, or why the instruction of a rule that matched could
	// not be carried out (on_error decided instead). It may quote the callback's values: the
	// trace is for the operator, not for the log.
	Error string `json:"error,omitempty"`
}

// Results of a Step.
const (
	Matched = "match"
	NoMatch = "no"
	Failed  = "error"
)

// Decision is the outcome for one callback.
type Decision struct {
	Rule       string        // the matched rule's name, "default" or "on_error"
	Action     *rules.Action // what to do; a bare defer when on_error's own templates failed
	Values     []Value       // the action's `with` fields, evaluated
	Err        error         // why on_error decided, if it did (see problem for what it may quote)
	RuleErrors []RuleError   // `when`s that failed at run time
	Trace      []Step        // every rule tried, with Explain only
	Revision   string        // the rules revision that decided

	// At is the callback's time, in the rules' timezone: its Timestamp parameter, or the
	// time it arrived when it has no usable one. `now` is At; the outbox counts the
	// action's delay and the reservation's timeout from it.
	At time.Time

	ReservationSid, TaskSid, WorkerSid, WorkspaceSid, WorkflowSid string

	answer []byte
}

// Instruction is the action's `do`: "defer", "accept", ….
func (d *Decision) Instruction() string { return d.Action.Do }

// Via says whether the decision is the answer or a REST call.
func (d *Decision) Via() rules.Via { return d.Action.Via }

// Delay is how long after the callback the REST call is due.
func (d *Decision) Delay() time.Duration { return d.Action.Delay }

// Answer is the instruction as a callback answer, whatever the action's via; {} for defer.
func (d *Decision) Answer() []byte { return d.answer }

// Response is the body to answer the callback with: the instruction, or {} when it goes by REST.
func (d *Decision) Response() []byte {
	if d.Action.Via == rules.REST {
		return emptyAnswer
	}
	return d.answer
}

// REST reports whether the decision must be carried out through the REST API.
func (d *Decision) REST() bool { return d.Action.Via == rules.REST && d.Action.Do != rules.Defer }

// Params are the Reservations REST parameters of the instruction (whatever its via), by
// their REST names; nil for defer.
func (d *Decision) Params() outbox.Params {
	in := d.Action.Instruction()
	if in == nil {
		return nil
	}
	out := make(outbox.Params, len(in.Fixed)+len(d.Values))
	for _, kv := range in.Fixed {
		out[kv[0]] = kv[1]
	}
	for _, v := range d.Values {
		out[v.Field.REST] = v.Value
	}
	return out
}

// Outbox is the decision as an outbox action, for a callback that arrived at arrived on a
// reservation that times out after timeout. Its times count from At, when the reservation
// was made, but never from later than the arrival: a Timestamp ahead of it (a sender whose
// clock runs fast) must not keep the action past the reservation's real end.
func (d *Decision) Outbox(arrived time.Time, timeout time.Duration) outbox.Action {
	received := d.At
	if !arrived.IsZero() && arrived.Before(received) {
		received = arrived
	}
	return outbox.Action{
		ReservationSid: d.ReservationSid,
		TaskSid:        d.TaskSid,
		WorkspaceSid:   d.WorkspaceSid,
		WorkerSid:      d.WorkerSid,
		WorkflowSid:    d.WorkflowSid,
		Rule:           d.Rule,
		Params:         d.Params(),
		Received:       received,
		Due:            received.Add(d.Delay()),
		Deadline:       received.Add(timeout),
	}
}

var emptyAnswer = []byte("{}")

// deferAction answers {} when even on_error cannot be rendered.
var deferAction = &rules.Action{Name: "on_error", Do: rules.Defer, Via: rules.Response}

// Decide decides one callback that arrived at arrived, which is the callback's time when its
// Timestamp parameter is missing or unusable (zero where nothing arrived: a test case). It
// never fails: problems with the callback choose on_error.
func (e *Engine) Decide(params url.Values, arrived time.Time) *Decision {
	return e.decide(params, arrived, false)
}

// Explain decides like Decide and records every rule tried in Trace.
func (e *Engine) Explain(params url.Values, arrived time.Time) *Decision {
	return e.decide(params, arrived, true)
}

// scratch is what one decision reuses from the last: a VM, the index's lookup and the
// clock that open() reads.
type scratch struct {
	vm     vm.VM
	lookup lookup
	clock  clock
	open   func(string) bool // clock.open
}

// clock answers open("NAME") at the time of the callback being decided.
type clock struct {
	schedules map[string]*rules.Schedule
	now       time.Time
}

func (c *clock) open(name string) bool {
	s := c.schedules[name]
	return s != nil && s.Open(c.now)
}

// decide finds the first matching rule. Without a trace it runs only the index's candidates;
// with one it runs every rule in order, so explain shows each rule's own result.
func (e *Engine) decide(params url.Values, arrived time.Time, trace bool) *Decision {
	s := e.vms.Get().(*scratch)
	defer e.vms.Put(s)
	machine := &s.vm

	at := arrived
	if ts := param(params, ParamTimestamp); ts != "" {
		if t, ok := parseTime(ts); ok {
			at = t
		}
	}
	at = at.In(e.zone)
	env, envErr := newEnv(params, e.set.Vars, e.params)
	if e.set.ReadsTime {
		env.Now = at
		s.clock.now = at
		env.Open = s.open
	}
	d := &Decision{
		At:             at,
		Revision:       e.set.Revision,
		ReservationSid: env.Reservation.Sid,
		TaskSid:        env.Task.Sid,
		WorkerSid:      env.Worker.Sid,
		WorkspaceSid:   env.WorkspaceSid,
		WorkflowSid:    env.WorkflowSid,
	}
	if envErr != nil {
		e.fail(d, machine, env, envErr)
		return d
	}
	candidates := e.index.every
	if !trace {
		candidates = e.index.candidates(env, &s.lookup)
	}
	for _, i := range candidates {
		if !trace && e.index.rejects(i, &s.lookup) {
			continue
		}
		r := e.set.Rules[i]
		out, err := machine.Run(r.Program, env)
		if err != nil {
			err = runError(r.Program, env, err)
			d.RuleErrors = append(d.RuleErrors, RuleError{Rule: r.Name, Err: err})
			if trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name, Result: Failed, Error: detail(err)})
			}
			continue
		}
		if out != true {
			if trace {
				d.Trace = append(d.Trace, Step{Rule: r.Name, Result: NoMatch})
			}
			continue
		}
		if trace {
			d.Trace = append(d.Trace, Step{Rule: r.Name, Result: Matched})
		}
		d.Rule = r.Name
		if err := e.render(d, machine, env, &r.Action); err != nil {
			if trace {
				d.Trace[len(d.Trace)-1].Error = "not carried out: " + detail(err)
			}
			e.fail(d, machine, env, prefixed(r.Name+": ", err))
		}
		return d
	}
	d.Rule = "default"
	if err := e.render(d, machine, env, e.set.Default); err != nil {
		e.fail(d, machine, env, prefixed("default: ", err))
	}
	return d
}

// fail decides with on_error; if on_error's own templates fail, the answer is {}.
func (e *Engine) fail(d *Decision, machine *vm.VM, env *rules.Env, cause error) {
	d.Rule = "on_error"
	d.Err = cause
	if err := e.render(d, machine, env, e.set.OnError); err != nil {
		d.Err = errors.Join(cause, fmt.Errorf("on_error: %w", err))
		d.Action, d.Values, d.answer = deferAction, nil, emptyAnswer
	}
}

// render evaluates an action's fields and its answer into d, once needs has found nothing
// that TaskRouter would fail the instruction for.
func (e *Engine) render(d *Decision, machine *vm.VM, env *rules.Env, a *rules.Action) error {
	vals, err := evalValues(a, machine, env)
	if err != nil {
		return err
	}
	if err := needs(a, vals, env); err != nil {
		return err
	}
	d.Action, d.Values = a, vals
	if ans, ok := e.answers[a]; ok {
		d.answer = ans
	} else {
		d.answer = encodeAnswer(a, vals)
	}
	return nil
}

// evalValues renders every `with` field of a for one callback.
func evalValues(a *rules.Action, machine *vm.VM, env *rules.Env) ([]Value, error) {
	if len(a.With) == 0 {
		return nil, nil
	}
	vals := make([]Value, 0, len(a.With))
	for i := range a.With {
		p := &a.With[i]
		if p.Const {
			vals = append(vals, Value{p.Field, p.Value})
			continue
		}
		raw, err := p.Tmpl.Eval(machine, env)
		if err != nil {
			return nil, prefixed("with "+p.Field.Name+": ", templateError(p.Tmpl, machine, env, err))
		}
		if raw == nil {
			if p.Field.Required {
				return nil, fmt.Errorf("with %s: the template gave null but %s is required", p.Field.Name, p.Field.Name)
			}
			continue
		}
		v, err := p.Field.Normalize(raw, false)
		if err != nil {
			return nil, fmt.Errorf("with %w", err)
		}
		vals = append(vals, Value{p.Field, v})
	}
	return vals, nil
}

// constantValues returns an action's fields when none depends on the callback.
func constantValues(a *rules.Action) ([]Value, bool) {
	vals := make([]Value, 0, len(a.With))
	for _, p := range a.With {
		if !p.Const {
			return nil, false
		}
		vals = append(vals, Value{p.Field, p.Value})
	}
	return vals, true
}

// templateError words a template's run-time error like a when's: the template does not say
// which of its ${ } parts failed, so they are run again, on this rare path only, to find it.
func templateError(t *rules.Template, machine *vm.VM, env *rules.Env, err error) error {
	for _, part := range t.Parts {
		if part.Program == nil {
			continue
		}
		if _, perr := machine.Run(part.Program, env); perr != nil {
			return runError(part.Program, env, perr)
		}
	}
	return runError(nil, env, err)
}

// readsParams reports whether any expression of the set reads `params`, or the whole
// environment through $env.
func readsParams(set *rules.Set) bool {
	var progs []*vm.Program
	for _, r := range set.Rules {
		progs = append(progs, r.Program)
	}
	for _, a := range set.Actions() {
		for _, p := range a.With {
			if p.Tmpl == nil {
				continue
			}
			for _, part := range p.Tmpl.Parts {
				if part.Program != nil {
					progs = append(progs, part.Program)
				}
			}
		}
	}
	found := false
	for _, prog := range progs {
		root := prog.Node()
		ast.Walk(&root, identifiers(func(name string) {
			found = found || name == "params" || name == "$env"
		}))
	}
	return found
}

// identifiers is an ast.Visitor calling f with the name of every identifier.
type identifiers func(name string)

func (f identifiers) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		f(id.Value)
	}
}
