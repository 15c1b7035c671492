// Package schema generates the JSON Schema (draft 2020-12) of rules.yaml for editors. It is
// built from the tables the validator reads — rules.Instructions and the key tables of
// rules/keys.go — so a new instruction, field or key reaches the schema without anyone
// editing it by hand.
//
// The schema uses only keywords that mean the same in draft-07, which editors' YAML language
// servers implement, as in 2020-12.
//
// The schema is structural: it knows keys, types, enums, ranges and the shape of SIDs and
// URLs, but not expressions, so `reservist check` stays the authority. Wherever the validator
// accepts a `${ … }` template, so does the schema.
//
// Its messages are the validator's: every pattern, enum and type an editor may find fault
// with carries errorMessage or patternErrorMessage (which yaml-language-server shows in
// place of the raw regular expression), worded with the rules package's own phrases, and
// each instruction's branch has a title, so that completions are labelled by what they add.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/reservist/reservist/rules"
)

// Draft is the JSON Schema dialect of the generated schema.
const Draft = "https://json-schema.org/draft/2020-12/schema"

// obj is a JSON object of the schema; encoding/json writes its keys sorted, so the output is
// stable.
type obj = map[string]any

// Generate returns the schema as a JSON value tree.
func Generate() (map[string]any, error) {
	g := &generator{defs: obj{}}
	top, err := g.object(rules.TopKeys())
	if err != nil {
		return nil, err
	}
	top["$schema"] = Draft
	top["title"] = "reservist rules.yaml"
	top["description"] = "rules that answer Twilio TaskRouter assignment callbacks; see `reservist check` for the checks a schema cannot make"
	for _, name := range []string{"rule", "action"} {
		keys := rules.RuleKeys()
		if name == "action" {
			keys = rules.ActionKeys()
		}
		def, err := g.object(keys)
		if err != nil {
			return nil, err
		}
		// In allOf, not beside the other keywords: draft-07 validators, which most editors'
		// YAML servers still are, ignore the siblings of a $ref.
		def["allOf"] = []any{obj{"$ref": "#/$defs/decision"}}
		g.defs[name] = def
	}
	g.defs["decision"] = obj{
		"description": "what do, with, via and delay may say together",
		"allOf":       conditions(),
	}
	for _, in := range rules.Instructions {
		g.defs["with-"+in.Name] = with(in)
	}
	sched, err := g.object(rules.ScheduleKeys())
	if err != nil {
		return nil, err
	}
	g.defs["schedule"] = sched
	g.defs["zone"] = obj{
		"enum":         rules.ZoneNames(),
		"description":  "a time zone of the tz database",
		"errorMessage": "timezone must be a zone name; " + rules.ZoneWant,
	}
	g.defs["hours"] = obj{
		"type":                "string",
		"pattern":             rules.RangePattern(),
		"description":         `a range of hours "HH:MM-HH:MM"; an end at or before the start is on the next day`,
		"errorMessage":        "a range of hours is " + rules.RangeWant,
		"patternErrorMessage": "a range of hours is " + rules.RangeWant,
	}
	top["$defs"] = g.defs
	return top, nil
}

// JSON returns the schema as indented JSON, ending in a newline.
func JSON() ([]byte, error) {
	s, err := Generate()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep ${ } and < > readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type generator struct {
	defs obj
}

// object is a closed mapping with the given keys.
func (g *generator) object(keys []rules.Key) (obj, error) {
	props := obj{}
	required := []string{}
	for _, k := range keys {
		p, err := g.property(k)
		if err != nil {
			return nil, err
		}
		props[k.Name] = p
		if k.Required {
			required = append(required, k.Name)
		}
	}
	return obj{
		"type":                 "object",
		"additionalProperties": false,
		"properties":           props,
		"required":             required,
	}, nil
}

// property is the schema of one key of the file, a rule, default or on_error.
func (g *generator) property(k rules.Key) (obj, error) {
	doc := k.Doc
	var p obj
	switch k.Name {
	case "version":
		// The validator compares the text, so a quoted "1" passes too.
		p = obj{"enum": []any{1, "1"}, "errorMessage": "version must be 1"}
	case "vars":
		p = obj{"type": []string{"object", "null"}, "propertyNames": patterned(rules.VarNamePattern(), "a var name must be "+rules.VarNameWant),
			"errorMessage": "vars must be a mapping of NAME: value"}
	case "rules":
		p = obj{"type": "array", "items": obj{"$ref": "#/$defs/rule"},
			"errorMessage": "rules must be a list of rules (each starting with `- name:`), or `rules: []` to decide every callback by default"}
	case "timezone":
		p = obj{"$ref": "#/$defs/zone"}
	case "schedules":
		p = obj{
			"type":                 []string{"object", "null"},
			"propertyNames":        patterned(rules.NamePattern(), "a schedule name must be "+rules.ScheduleNameWant),
			"additionalProperties": obj{"$ref": "#/$defs/schedule"},
			"errorMessage":         "schedules must be a mapping of NAME: {hours: …}",
		}
	case "hours":
		hours := obj{"$ref": "#/$defs/hours"}
		p = obj{
			"type":                 "object",
			"propertyNames":        obj{"enum": rules.DayKeys(), "errorMessage": "a day key is " + rules.DayKeyWant},
			"additionalProperties": obj{"anyOf": []any{hours, obj{"type": "array", "minItems": 1, "items": hours, "errorMessage": "a day's hours are a range like \"08:00-18:00\" or a list of them"}}},
			"errorMessage":         `hours must be a mapping of days to ranges, like mon-fri: "08:00-18:00"`,
		}
	case "closed":
		date := patterned(rules.DatePattern(), "a closed date is "+rules.DateWant)
		date["type"] = "string"
		p = obj{"type": []string{"array", "null"}, "items": date, "errorMessage": "closed must be a list of dates (" + rules.DateWant + ")"}
	case "default", "on_error":
		p = obj{"$ref": "#/$defs/action"}
	case "name":
		p = patterned(rules.NamePattern(), "a rule name must be "+rules.NameWant)
		p["type"] = "string"
	case "description":
		p = obj{"type": "string", "errorMessage": "description must be text"}
	case "when":
		// `when: true` is a YAML boolean; the validator reads its text as the expression.
		p = obj{"type": []string{"string", "boolean"}, "minLength": 1, "errorMessage": "when must be " + rules.WhenWant}
	case "do":
		p = obj{"enum": rules.DoValues(), "errorMessage": "do must be one of " + strings.Join(rules.DoValues(), ", ")}
		doc = doDoc()
	case "with":
		p = obj{"type": []string{"object", "null"}, "errorMessage": "with must be a mapping of the instruction's fields"}
	case "via":
		p = obj{"enum": []string{string(rules.Response), string(rules.REST)}, "errorMessage": "via must be response or rest"}
	case "delay":
		want := "delay must be " + rules.DelayWant
		p = obj{"anyOf": []any{
			obj{"type": "string", "pattern": durationPattern, "errorMessage": want, "patternErrorMessage": want},
			obj{"const": 0, "errorMessage": want},
		}}
	default:
		return nil, fmt.Errorf("schema: the validator takes key %q, which the schema gives no type; add it to property", k.Name)
	}
	p["description"] = doc
	return p, nil
}

// patterned is a string pattern with the message an editor shows when a value does not
// match it.
func patterned(pattern, message string) obj {
	return obj{"pattern": pattern, "patternErrorMessage": message}
}

// durationPattern is what time.ParseDuration accepts, without a minus sign: the validator
// refuses negative delays.
const durationPattern = `^(0|\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

func doDoc() string {
	parts := []string{rules.Defer + ": answer {} and leave the reservation pending"}
	for _, in := range rules.Instructions {
		parts = append(parts, in.Name+": "+in.Doc)
	}
	return strings.Join(parts, "; ")
}

// conditions are the checks that depend on do: each instruction's with, and defer taking
// nothing else; and that a delay is carried out by REST. Each branch has a title, which
// editors use to label the completions it adds, and each condition holds only for a
// mapping, so that an empty list item (`- `), which every condition would otherwise match,
// gets its completions once, not once per instruction.
func conditions() []any {
	var out []any
	is := func(do string) obj {
		return obj{"type": "object", "properties": obj{"do": obj{"const": do}}, "required": []string{"do"}}
	}
	deferThen := obj{}
	var others []string
	for _, k := range rules.ActionKeys() {
		if k.Name != "do" {
			deferThen[k.Name] = false
			others = append(others, k.Name)
		}
	}
	// An editor shows the errorMessage of the mapping for each key its properties refuse.
	out = append(out, obj{"title": "do: " + rules.Defer, "if": is(rules.Defer), "then": obj{
		"title": "do: " + rules.Defer, "properties": deferThen,
		"errorMessage": fmt.Sprintf("do: defer takes no %s (%s); remove it", orList(others), rules.DeferWant),
	}})
	for _, in := range rules.Instructions {
		then := obj{"title": "do: " + in.Name, "properties": obj{"with": obj{"$ref": "#/$defs/with-" + in.Name}}}
		if slices.ContainsFunc(in.Fields, func(f rules.Field) bool { return f.Required }) {
			then["required"] = []string{"with"}
		}
		out = append(out, obj{"title": "do: " + in.Name, "if": is(in.Name), "then": then})
	}
	// Only via: response is at fault beside a delay: any other value is the enum's to refuse,
	// and two messages for one mistake would be one too many.
	out = append(out, obj{
		"title": "delay",
		"if":    obj{"type": "object", "required": []string{"delay", "via"}, "properties": obj{"via": obj{"const": string(rules.Response)}}},
		"then":  obj{"title": "delay", "properties": obj{"via": obj{"const": string(rules.REST), "errorMessage": rules.DelayViaWant}}},
	})
	return out
}

// with is the schema of an instruction's `with` mapping.
func with(in *rules.Instruction) obj {
	if len(in.Fields) == 0 {
		return obj{"type": "null", "title": "with (" + in.Name + ")", "description": in.Name + " takes no fields under with",
			"errorMessage": in.Name + " takes no fields under with; remove with"}
	}
	props := obj{}
	required := []string{}
	for i := range in.Fields {
		f := &in.Fields[i]
		props[f.Name] = field(f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	typ := any("object")
	if len(required) == 0 {
		typ = []string{"object", "null"} // `with:` left empty
	}
	return obj{
		"title":                "with (" + in.Name + ")",
		"description":          in.Name + ": " + in.Doc,
		"type":                 typ,
		"additionalProperties": false,
		"properties":           props,
		"required":             required,
	}
}

// field is the schema of one `with` field: its literal forms, or a template. Every form
// carries the same message, the validator's, since an editor shows the message of whichever
// form came nearest.
func field(f *rules.Field) obj {
	msg := f.Name + " must be " + f.Want() + ", or a ${ expression }"
	with := func(o obj) obj {
		o["errorMessage"] = msg
		if _, ok := o["pattern"]; ok {
			o["patternErrorMessage"] = msg
		}
		return o
	}
	var alts []any
	switch f.Kind {
	case rules.String:
		alts = append(alts, obj{"type": "string"})
	case rules.Address:
		alts = append(alts,
			with(obj{"type": "string", "pattern": addressPattern()}),
			// YAML reads an unquoted +15005550006 as a number; the validator takes the text
			// as written. Quote numbers: a schema cannot see that a leading + is missing.
			with(obj{"type": "integer", "minimum": 10, "maximum": 999_999_999_999_999}))
	case rules.URL:
		alts = append(alts, with(obj{"type": "string", "format": "uri", "pattern": urlPattern}))
	case rules.SID:
		alts = append(alts, with(obj{"type": "string", "pattern": sidPattern(f.Prefix)}))
	case rules.Int:
		alts = append(alts, with(obj{"type": "integer", "minimum": f.Min, "maximum": f.Max}))
	case rules.Bool:
		alts = append(alts, with(obj{"type": "boolean"}))
	case rules.Enum:
		alts = append(alts, with(obj{"enum": enumValues(f.Enum)}))
	case rules.List:
		item := "(" + alternation(f.Enum) + ")"
		alts = append(alts,
			with(obj{"type": "array", "minItems": 1, "items": with(obj{"enum": f.Enum})}),
			with(obj{"type": "string", "pattern": `^\s*` + item + `\s*(,\s*` + item + `\s*)*$`}))
	}
	// A template: any ${ } for a string; for an integer or boolean, a single ${ expression }
	// with no text around it, which keeps the expression's type (text around it makes a
	// string).
	template := obj{"type": "string", "pattern": `\$\{`, "description": "a ${ expression } template, compiled and type-checked when the file loads"}
	if f.Kind == rules.Int || f.Kind == rules.Bool {
		template = obj{"type": "string", "pattern": `^\$\{[\s\S]*\}$`, "description": "a single ${ expression } with no text around it, keeping the expression's type"}
	}
	if f.Kind != rules.String {
		alts = append(alts, with(template))
	} else {
		alts = append(alts, template)
	}
	doc := f.Doc
	if f.Required {
		doc += " (required)"
	}
	return obj{"description": doc, "anyOf": alts}
}

// enumValues are an Enum field's values; where the enum holds "true" or "false", the YAML
// booleans are accepted too, as the validator does.
func enumValues(enum []string) []any {
	out := make([]any, 0, len(enum)+2)
	for _, v := range enum {
		out = append(out, v)
	}
	for _, b := range []bool{true, false} {
		if slices.Contains(enum, fmt.Sprint(b)) {
			out = append(out, b)
		}
	}
	return out
}

// Patterns are written in the common subset of Go's RE2 and ECMA-262 (what editors run).
const urlPattern = `^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+`

// sidPattern matches a SID with the given prefix, the prefix in either case.
func sidPattern(prefix string) string {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range prefix {
		fmt.Fprintf(&b, "[%c%c]", unicode.ToUpper(r), unicode.ToLower(r))
	}
	b.WriteString("[0-9a-fA-F]{32}$")
	return b.String()
}

// addressPattern matches a literal phone number, client:NAME or sip:URI.
func addressPattern() string {
	e164 := strings.TrimSuffix(strings.TrimPrefix(rules.E164Pattern(), "^"), "$")
	return "^(" + e164 + "|client:.+|sip:.+)$"
}

// orList writes words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func alternation(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = regexp.QuoteMeta(w)
	}
	return strings.Join(q, "|")
}
