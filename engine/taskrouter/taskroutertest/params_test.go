package taskroutertest

import (
	"slices"
	"strings"
	"testing"

	"github.com/reservist/reservist/rules"
)

// The fake's table is copied from Twilio's OpenAPI description, the rules' instruction table
// from docs/rules.md: each REST parameter an instruction writes is one the fake knows, in
// the instruction's group, of the same type and with the same values; and conference writes
// every parameter the OpenAPI gives it.
func TestRulesWriteWhatTheAPITakes(t *testing.T) {
	groups := map[string]string{"accept": groupStatus, "reject": groupStatus}
	written := map[string]bool{}
	for _, in := range rules.Instructions {
		group := groups[in.Name]
		if group == "" {
			group = in.Name
		}
		for _, kv := range in.Fixed {
			if kv[0] == "Instruction" {
				if kv[1] != group || !slices.Contains(instructions, kv[1]) {
					t.Errorf("%s: Instruction=%s is not an instruction the API takes", in.Name, kv[1])
				}
				continue
			}
			if p, ok := updateParams[kv[0]]; !ok || p.group != group || p.check(kv[0], kv[1]) != "" {
				t.Errorf("%s: fixed %s=%s is not a value the API takes for it", in.Name, kv[0], kv[1])
			}
		}
		for _, f := range in.Fields {
			written[f.REST] = true
			p, ok := updateParams[f.REST]
			if !ok {
				t.Errorf("%s %s: REST parameter %s is not in UpdateTaskReservationRequest", in.Name, f.Name, f.REST)
				continue
			}
			if p.group != group {
				t.Errorf("%s %s: %s belongs to %s, not %s", in.Name, f.Name, f.REST, p.group, group)
			}
			if msg := sameType(f, p); msg != "" {
				t.Errorf("%s %s (%s): %s", in.Name, f.Name, f.REST, msg)
			}
		}
	}
	for name, p := range updateParams {
		if p.group == groupConference && !written[name] {
			t.Errorf("conference does not write %s, which the API takes", name)
		}
	}
	// Without WorkerActivitySid a rejected worker stays in its activity: it is optional.
	if f := rules.Lookup("reject").Field("activity_sid"); f == nil || f.Required {
		t.Errorf("reject's activity_sid = %+v; want an optional field", f)
	}
}

// sameType says how a rules field and the API's parameter disagree, or "".
func sameType(f rules.Field, p param) string {
	switch f.Kind {
	case rules.String, rules.Address:
		if p.kind != kindString {
			return "a string in the rules, not in the API"
		}
	case rules.URL:
		if p.kind != kindURI {
			return "a URL in the rules, not in the API"
		}
	case rules.SID:
		if p.kind != kindSid || !p.sid.MatchString(f.Prefix+"0123456789abcdef0123456789abcdef") {
			return "a " + f.Prefix + " SID in the rules, not in the API"
		}
	case rules.Int:
		if p.kind != kindInt {
			return "an integer in the rules, not in the API"
		}
		if p.max > 0 && (p.min != f.Min || p.max != f.Max) {
			return "bounds differ from the API's"
		}
	case rules.Bool:
		if p.kind != kindBool {
			return "a boolean in the rules, not in the API"
		}
	case rules.Enum, rules.List:
		if p.kind != kindEnum || p.list != (f.Kind == rules.List) {
			return "an enum or list in the rules, not the same in the API"
		}
		a, b := slices.Sorted(slices.Values(f.Enum)), slices.Sorted(slices.Values(p.enum))
		if !slices.Equal(a, b) {
			return "values " + join(a) + " in the rules, " + join(b) + " in the API"
		}
	}
	return ""
}

func join(vs []string) string { return strings.Join(vs, ",") }
