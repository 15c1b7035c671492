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
	g.defs["template"] = obj{
		"type":        "string",
		"pattern":     `\$\{`,
		"description": "a ${ expression } template, compiled and type-checked when the file loads",
	}
	// Text around ${ } makes a string, which an integer or boolean field refuses.
	g.defs["whole-template"] = obj{
		"type":        "string",
		"pattern":     `^\$\{[\s\S]*\}$`,
		"description": "a single ${ expression } with no text around it, keeping the expression's type",
	}
	for _, in := range rules.Instructions {
		g.defs["with-"+in.Name] = with(in)
	}
	sched, err := g.object(rules.ScheduleKeys())
	if err != nil {
		return nil, err
	}
	g.defs["schedule"] = sched
	g.defs["zone"] = obj{"enum": rules.ZoneNames(), "description": "a time zone of the tz database"}
	g.defs["hours"] = obj{
		"type":        "string",
		"pattern":     rules.RangePattern(),
		"description": `a range of hours "HH:MM-HH:MM"; an end at or before the start is on the next day`,
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
		p = obj{"enum": []any{1, "1"}}
	case "vars":
		p = obj{"type": []string{"object", "null"}, "propertyNames": obj{"pattern": rules.VarNamePattern()}}
	case "rules":
		p = obj{"type": "array", "items": obj{"$ref": "#/$defs/rule"}}
	case "timezone":
		p = obj{"$ref": "#/$defs/zone"}
	case "schedules":
		p = obj{
			"type":                 []string{"object", "null"},
			"propertyNames":        obj{"pattern": rules.NamePattern()},
			"additionalProperties": obj{"$ref": "#/$defs/schedule"},
		}
	case "hours":
		hours := obj{"$ref": "#/$defs/hours"}
		p = obj{
			"type":                 "object",
			"propertyNames":        obj{"enum": rules.DayKeys()},
			"additionalProperties": obj{"anyOf": []any{hours, obj{"type": "array", "minItems": 1, "items": hours}}},
		}
	case "closed":
		p = obj{"type": []string{"array", "null"}, "items": obj{"type": "string", "pattern": rules.DatePattern()}}
	case "default", "on_error":
		p = obj{"$ref": "#/$defs/action"}
	case "name":
		p = obj{"type": "string", "pattern": rules.NamePattern()}
	case "description":
		p = obj{"type": "string"}
	case "when":
		// `when: true` is a YAML boolean; the validator reads its text as the expression.
		p = obj{"type": []string{"string", "boolean"}, "minLength": 1}
	case "do":
		p = obj{"enum": rules.DoValues()}
		doc = doDoc()
	case "with":
		p = obj{"type": []string{"object", "null"}}
	case "via":
		p = obj{"enum": []string{string(rules.Response), string(rules.REST)}}
	case "delay":
		p = obj{"anyOf": []any{
			obj{"type": "string", "pattern": durationPattern},
			obj{"const": 0},
		}}
	default:
		return nil, fmt.Errorf("schema: the validator takes key %q, which the schema gives no type; add it to property", k.Name)
	}
	p["description"] = doc
	return p, nil
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
// nothing else; and that a delay is carried out by REST.
func conditions() []any {
	var out []any
	is := func(do string) obj {
		return obj{"properties": obj{"do": obj{"const": do}}, "required": []string{"do"}}
	}
	deferThen := obj{}
	for _, k := range rules.ActionKeys() {
		if k.Name != "do" {
			deferThen[k.Name] = false
		}
	}
	out = append(out, obj{"if": is(rules.Defer), "then": obj{"properties": deferThen}})
	for _, in := range rules.Instructions {
		then := obj{"properties": obj{"with": obj{"$ref": "#/$defs/with-" + in.Name}}}
		if slices.ContainsFunc(in.Fields, func(f rules.Field) bool { return f.Required }) {
			then["required"] = []string{"with"}
		}
		out = append(out, obj{"if": is(in.Name), "then": then})
	}
	out = append(out, obj{
		"if":   obj{"required": []string{"delay"}},
		"then": obj{"properties": obj{"via": obj{"const": string(rules.REST)}}},
	})
	return out
}

// with is the schema of an instruction's `with` mapping.
func with(in *rules.Instruction) obj {
	if len(in.Fields) == 0 {
		return obj{"type": "null", "description": in.Name + " takes no fields under with"}
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
		"description":          in.Name + ": " + in.Doc,
		"type":                 typ,
		"additionalProperties": false,
		"properties":           props,
		"required":             required,
	}
}

// field is the schema of one `with` field: its literal forms, or a template.
func field(f *rules.Field) obj {
	var alts []any
	switch f.Kind {
	case rules.String:
		alts = append(alts, obj{"type": "string"})
	case rules.Address:
		alts = append(alts,
			obj{"type": "string", "pattern": addressPattern()},
			// YAML reads an unquoted +15005550006 as a number; the validator takes the text
			// as written. Quote numbers: a schema cannot see that a leading + is missing.
			obj{"type": "integer", "minimum": 10, "maximum": 999_999_999_999_999})
	case rules.URL:
		alts = append(alts, obj{"type": "string", "format": "uri", "pattern": urlPattern})
	case rules.SID:
		alts = append(alts, obj{"type": "string", "pattern": sidPattern(f.Prefix)})
	case rules.Int:
		alts = append(alts, obj{"type": "integer", "minimum": f.Min, "maximum": f.Max})
	case rules.Bool:
		alts = append(alts, obj{"type": "boolean"})
	case rules.Enum:
		alts = append(alts, obj{"enum": enumValues(f.Enum)})
	case rules.List:
		item := "(" + alternation(f.Enum) + ")"
		alts = append(alts,
			obj{"type": "array", "minItems": 1, "items": obj{"enum": f.Enum}},
			obj{"type": "string", "pattern": `^\s*` + item + `\s*(,\s*` + item + `\s*)*$`})
	}
	tmpl := "#/$defs/template"
	if f.Kind == rules.Int || f.Kind == rules.Bool {
		tmpl = "#/$defs/whole-template"
	}
	alts = append(alts, obj{"$ref": tmpl})
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

func alternation(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = regexp.QuoteMeta(w)
	}
	return strings.Join(q, "|")
}
