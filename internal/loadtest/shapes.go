package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// shape is one kind of generated rules file: rules that the callback does not match, each
// leading with the shape's kind of comparison, then one that it matches, which answers as the
// example's voice rule does. Each shape leads with a different kind of comparison, so that a
// kind the engine's index does not take shows as a slow peer rather than hiding behind one
// that it does.
type shape struct {
	name  string
	about string
	when  func(i int) string // rule i's condition, which the callback does not meet
	last  string             // the last rule's, which it meets
}

var shapes = []shape{
	{"strings", "an attribute == a string, or in a list of strings", func(i int) string {
		switch i % 3 {
		case 0:
			return fmt.Sprintf(`task.attributes.to == "+1555%07d" && (worker.attributes.level ?? 0) >= 2`, i)
		case 1:
			return fmt.Sprintf(`task.attributes.to == "+1555%07d" && "sales" in worker.attributes.skills`, i)
		}
		return fmt.Sprintf(`task.attributes.to in ["+1555%07d", "+1666%07d"] && task.priority > 5`, i, i)
	}, `task.attributes.to == "+15005550006" && task.attributes.call_sid != nil`},
	{"numbers", "an attribute == an integer or a float, either way round", func(i int) string {
		switch i % 3 {
		case 0:
			return fmt.Sprintf(`task.attributes.account == %d && (worker.attributes.level ?? 0) >= 2`, i)
		case 1:
			return fmt.Sprintf(`task.attributes.account == %d.5 && task.attributes.call_sid != nil`, i)
		}
		return fmt.Sprintf(`%d == task.attributes.account && task.priority > 5`, i)
	}, `task.attributes.account == 40017 && task.attributes.call_sid != nil`},
	{"in", "an attribute in a list of numbers, or of numbers, strings and booleans", func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf(`task.attributes.account in [%d, %d, %d] && task.priority > 5`, 3*i, 3*i+1, 3*i+2)
		}
		return fmt.Sprintf(`task.attributes.account in [%d, "%d", true] && task.attributes.call_sid != nil`, 3*i, 3*i)
	}, `task.attributes.account in [40016, 40017, "40017"] && task.attributes.call_sid != nil`},
	{"optional", "?. and ?? paths == a number or a string", func(i int) string {
		switch i % 3 {
		case 0:
			return fmt.Sprintf(`task.attributes.customer?.id == %d && task.attributes.call_sid != nil`, i)
		case 1:
			return fmt.Sprintf(`(task.attributes.customer?.tier ?? "none") == "tier-%d"`, i)
		}
		return fmt.Sprintf(`(task.attributes.region ?? "us") == "r%d" && task.priority > 5`, i)
	}, `task.attributes.customer?.id == 7001 && task.attributes.call_sid != nil`},
	{"ranges", "a number attribute >= one bound and < the next", func(i int) string {
		return fmt.Sprintf(`task.attributes.score >= %d && task.attributes.score < %d && task.attributes.call_sid != nil`, 100+i, 101+i)
	}, `task.attributes.score >= 72 && task.attributes.score < 73 && task.attributes.call_sid != nil`},
	{"skills", "a string in the worker's skills list", func(i int) string {
		return fmt.Sprintf(`"skill-%d" in worker.attributes.skills && task.attributes.call_sid != nil`, i)
	}, `"support" in worker.attributes.skills && task.attributes.call_sid != nil`},
	{"or", "an attribute == one string || == another", func(i int) string {
		return fmt.Sprintf(`(task.attributes.to == "+1555%07d" || task.attributes.to == "+1666%07d") && task.priority > 5`, i, i)
	}, `(task.attributes.to == "+15005550007" || task.attributes.to == "+15005550006") && task.attributes.call_sid != nil`},
	{"mix", "the shapes above in turn", nil, `task.attributes.to == "+15005550006" && task.attributes.call_sid != nil`},
}

// defaultShapes are the shapes the runner measures unless told otherwise.
const defaultShapes = "strings,numbers,in,optional,mix"

// selectShapes reads -shapes: names separated by commas, "all", or "" for none.
func selectShapes(list string) ([]shape, error) {
	if list == "all" {
		return shapes, nil
	}
	var out []shape
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(shapes, func(s shape) bool { return s.name == name })
		if i < 0 {
			var names []string
			for _, s := range shapes {
				names = append(names, s.name)
			}
			return nil, fmt.Errorf("-shapes: no shape %q; the shapes are %s, or all", name, strings.Join(names, ", "))
		}
		out = append(out, shapes[i])
	}
	return out, nil
}

// generatedRules is a rules file of n rules of a shape, of which only the last matches the
// runner's callback and answers as the example's voice rule does. The others take turns at
// three actions, as a rules file's rules do.
func generatedRules(s shape, n int) string {
	var b strings.Builder
	b.WriteString(`version: 1
vars:
  busy: WAfedcba9876543210fedcba9876543210
  support_line: "+15005550006"
rules:
`)
	for i := range n - 1 {
		when := s.when
		if when == nil {
			when = shapes[i%(len(shapes)-1)].when
		}
		fmt.Fprintf(&b, "  - name: line-%d\n    when: '%s'\n", i, when(i))
		switch i % 3 {
		case 0:
			b.WriteString("    do: accept\n")
		case 1:
			b.WriteString("    do: reject\n    with:\n      activity_sid: ${ vars.busy }\n")
		default:
			b.WriteString("    do: dequeue\n    with:\n      from: ${ vars.support_line }\n      timeout: 20\n")
		}
	}
	fmt.Fprintf(&b, `  - name: support-line
    when: '%s'
    do: conference
    with:
      from: ${ vars.support_line }
      end_conference_on_customer_exit: true
      conference_status_callback: https://example.com/events/call?task=${ task.sid }
      conference_status_callback_events: [start, end]
default:
  do: defer
on_error:
  do: reject
  with:
    activity_sid: ${ vars.busy }
`, s.last)
	return b.String()
}

// extraAttributes are added to the voice callback's task attributes: a number, a float and
// an object, which the shapes compare. The example rules read none of them.
var extraAttributes = map[string]any{"account": 40017, "score": 72.5, "customer": map[string]any{"id": 7001, "tier": "gold"}}

// withExtraAttributes is the callback with extraAttributes in its TaskAttributes.
func withExtraAttributes(params url.Values) (url.Values, error) {
	attrs := map[string]any{}
	if err := json.Unmarshal([]byte(params.Get("TaskAttributes")), &attrs); err != nil {
		return nil, fmt.Errorf("TaskAttributes: %w", err)
	}
	for k, v := range extraAttributes {
		attrs[k] = v
	}
	b, err := json.Marshal(attrs)
	if err != nil {
		return nil, err
	}
	out := url.Values{}
	for k, vs := range params {
		out[k] = slices.Clone(vs)
	}
	out.Set("TaskAttributes", string(b))
	return out, nil
}
