package engine

import (
	"fmt"

	"github.com/reservist/reservist/rules"
)

// needs checks that TaskRouter will be able to carry out a decision, as far as the callback
// can tell. The voice instructions need attributes that only some tasks and workers have,
// and without them TaskRouter fails the instruction after reservist has answered 200, where
// no one sees it but Twilio's debugger (docs/taskrouter.md, "What TaskRouter needs from the
// attributes"). A callback whose decision fails the check goes to on_error instead. The
// error names the attribute and the Twilio error it avoids, never an attribute's value.
func needs(a *rules.Action, vals []Value, env *rules.Env) error {
	var toCode string
	switch a.Do {
	case "dequeue":
		if sid := env.Task.Attributes["call_sid"]; !present(sid) {
			return fmt.Errorf("dequeue needs task.attributes.call_sid (a task created by <Enqueue> has it), and it %s: TaskRouter would fail the instruction with Twilio error 40140", missingVerb(sid))
		}
		toCode = "40131"
	case "conference":
		if !present(env.Task.Attributes["call_sid"]) && !present(env.Task.Attributes["outbound_to"]) {
			return fmt.Errorf("conference needs task.attributes.call_sid (an inbound call) or task.attributes.outbound_to (an outbound one), and the task has neither: TaskRouter would fail the instruction with Twilio error 40142")
		}
		toCode = "40137"
	case "call":
		toCode = "40110"
	default:
		return nil
	}
	for _, v := range vals {
		if v.Field.Name == "to" {
			return nil
		}
	}
	if uri := env.Worker.Attributes["contact_uri"]; !present(uri) {
		return fmt.Errorf("%s has no to, so TaskRouter calls worker.attributes.contact_uri, and it %s: TaskRouter would fail the instruction with Twilio error %s; give to under with, or the worker a contact_uri", a.Do, missingVerb(uri), toCode)
	}
	return nil
}

// present reports whether an attribute that names a call or an address is usable: text,
// not empty.
func present(v any) bool {
	s, ok := v.(string)
	return ok && s != ""
}

// missingVerb says what is wrong with an attribute present refused, without its value.
func missingVerb(v any) string {
	switch v.(type) {
	case nil:
		return "is missing"
	case string:
		return "is empty"
	}
	return "is " + jsonType(v) + ", not a string"
}
