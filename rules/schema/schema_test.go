package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"gopkg.in/yaml.v3"

	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/rules/schema"
)

// compile turns the generated schema into a validator; the compiler also checks it against
// the draft 2020-12 meta-schema.
func compile(t *testing.T) *jsonschema.Schema { return compileAs(t, nil) }

// drafts are the dialects the schema is read in: its own, and draft-07, which editors' YAML
// language servers implement.
var drafts = []struct {
	name  string
	draft *jsonschema.Draft
}{{"2020-12", nil}, {"draft-07", jsonschema.Draft7}}

// compileAs compiles the schema, read as draft instead of its $schema when draft is not nil.
func compileAs(t *testing.T, draft *jsonschema.Draft) *jsonschema.Schema {
	t.Helper()
	out, err := schema.JSON()
	if err != nil {
		t.Fatalf("schema.JSON() error: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("schema.JSON() is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if draft != nil {
		delete(doc.(map[string]any), "$schema")
		c.DefaultDraft(draft)
	}
	if err := c.AddResource("rules.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("rules.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return sch
}

// instance reads YAML the way an editor's YAML language server does and hands it to the
// validator as JSON values.
func instance(t *testing.T, data []byte) any {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	untime(&doc)
	var v any
	if err := doc.Decode(&v); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	js, err := json.Marshal(jsonValue(v))
	if err != nil {
		t.Fatalf("YAML as JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// untime reads unquoted dates (closed: [2026-12-25]) as the text they are: YAML 1.2, which
// editors' language servers read, has no timestamps, while yaml.v3 makes them time.Time.
func untime(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!timestamp" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		untime(c)
	}
}

// jsonValue gives mappings with non-string keys string keys, as JSON has only those.
func jsonValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonValue(e)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonValue(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonValue(e)
		}
	}
	return v
}

// problems lists where the schema finds fault, as JSON pointers: an unknown or missing key
// at the key's own place, a value that fits none of a field's forms at the field.
func problems(err error) []string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []string{"not a validation error: " + err.Error()}
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		loc := "/" + strings.Join(e.InstanceLocation, "/")
		switch k := e.ErrorKind.(type) {
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				out = append(out, strings.TrimSuffix(loc, "/")+"/"+p)
			}
			return
		case *kind.Required:
			for _, p := range k.Missing {
				out = append(out, strings.TrimSuffix(loc, "/")+"/"+p)
			}
			return
		case *kind.AnyOf:
			out = append(out, loc)
			return
		case *kind.PropertyNames:
			// The validator (v6.0.3) reports these at a wrong location: its location
			// slice is reused. The name is enough.
			out = append(out, "property name "+k.Property)
			return
		}
		if len(e.Causes) == 0 {
			out = append(out, loc)
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.Sort(out)
	return slices.Compact(out)
}

func TestGoodFilesPass(t *testing.T) {
	for _, d := range drafts {
		t.Run(d.name, func(t *testing.T) { testGoodFilesPass(t, compileAs(t, d.draft)) })
	}
}

func testGoodFilesPass(t *testing.T, sch *jsonschema.Schema) {
	files, err := filepath.Glob("../../testdata/good/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good fixtures: %v", err)
	}
	files = append(files, "../../testdata/example/rules.yaml", "../../testdata/hours/rules.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(instance(t, data)); err != nil {
				t.Errorf("schema rejects %s:\n%v", f, err)
			}
		})
	}
}

// TestBadFilesFail checks that the schema catches the structural mistakes of the bad
// fixtures, each where it is, and nothing else. What it cannot see is listed beside each.
func TestBadFilesFail(t *testing.T) {
	for _, d := range drafts {
		t.Run(d.name, func(t *testing.T) { testBadFilesFail(t, compileAs(t, d.draft)) })
	}
}

func testBadFilesFail(t *testing.T, sch *jsonschema.Schema) {
	tests := []struct {
		file string
		want []string
	}{
		{"empty.bad.yaml", []string{"/"}},
		{"fields.bad.yaml", []string{
			// Not caught: `to: 5551234` is a YAML number, which the schema cannot tell
			// from an unquoted +15005550006.
			"/rules/0/with/activity_sid",
			"/rules/1/with/record",
			"/rules/1/with/status_callback_events",
			"/rules/1/with/status_callback_url",
			"/rules/1/with/timeout",
			"/rules/2/with/accept",
			"/rules/2/with/from",
			"/rules/2/with/timeout",
			"/rules/2/with/url",
			"/rules/3/with/call_sid",
			"/rules/4/with/beep",
			"/rules/4/with/conference_record",
			"/rules/4/with/max_participants",
			"/rules/4/with/muted",
			"/rules/4/with/wait_url",
		}},
		{"no-rules.bad.yaml", []string{"/rules"}},
		{"rules-null.bad.yaml", []string{"/rules"}},
		{"seven-mistakes.bad.yaml", []string{
			// Not caught: a non-boolean when, a duplicate name, an expression syntax error.
			"/rules/0/do",
			"/rules/1/with/call_sid",
			"/rules/2/with/url",
			"/rules/3/with",
		}},
		{"structure.bad.yaml", []string{
			"/default/when",
			"/on_error",
			"/rule",
			"/rules/0/name",
			"/rules/0/wehn",
			"/rules/0/when",
			"/rules/1/name",
			"/rules/1/when",
			"/rules/2",
			"/version",
		}},
		{"templates.bad.yaml", []string{
			// Not caught: everything inside ${ } and when.
			"/rules/4/with/timeout",
			"property name 1bad",
		}},
		{"zone.bad.yaml", []string{"/schedules/moon-base/timezone", "/schedules/night-desk/timezone", "/schedules/support/timezone", "/timezone"}},
		{"day-key.bad.yaml", []string{
			"property name Daily", "property name Monday", "property name thu-funday",
			"property name tues", "property name wed-wed", "property name weekend",
		}},
		{"range.bad.yaml", []string{
			"/schedules/support/hours/fri", "/schedules/support/hours/mon", "/schedules/support/hours/sat",
			"/schedules/support/hours/sun", "/schedules/support/hours/thu", "/schedules/support/hours/tue",
			"/schedules/support/hours/wed",
		}},
		{"date.bad.yaml", []string{
			// Not caught: 2026-02-30, which has the shape of a date.
			"/schedules/night-desk/closed",
			"/schedules/support/closed/2",
			"/schedules/support/closed/3",
			"/schedules/support/closed/4",
		}},
		{"via.bad.yaml", []string{
			// Not caught: a dequeue via rest without from.
			"/rules/0/via",
			"/rules/1/via",
			"/rules/1/with",
			"/rules/2/via",
			"/rules/3/delay",
			"/rules/4/delay",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("../../testdata/bad", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			err = sch.Validate(instance(t, data))
			if err == nil {
				t.Fatalf("schema accepts %s", tt.file)
			}
			if got := problems(err); !slices.Equal(got, tt.want) {
				t.Errorf("schema faults in %s = %q; want %q\n%v", tt.file, got, tt.want, err)
			}
		})
	}
	// The YAML syntax fixture cannot reach any schema, and these hold only mistakes a schema
	// cannot see: in expressions (open's argument, zones given to timezone() and date(),
	// now()), and a day given in two keys. Make sure no other is left out.
	covered := map[string]bool{
		"yaml-syntax.bad.yaml":  true,
		"open-unknown.bad.yaml": true,
		"open-literal.bad.yaml": true,
		"expr-zone.bad.yaml":    true,
		"now-call.bad.yaml":     true,
		"day-twice.bad.yaml":    true,
	}
	for _, tt := range tests {
		covered[tt.file] = true
	}
	files, _ := filepath.Glob("../../testdata/bad/*.bad.yaml")
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("bad fixture %s has no expectations here", filepath.Base(f))
		}
	}
}

// TestAgreesWithValidator feeds the schema and the validator the same one-rule files, one
// value at a time, and wants the same verdict: the patterns and ranges of the schema are
// translations of code in rules, and this is what keeps them honest.
func TestAgreesWithValidator(t *testing.T) {
	sch := compile(t)
	check := func(t *testing.T, doc string) {
		t.Helper()
		_, perr := rules.Parse("t.yaml", []byte(doc))
		serr := sch.Validate(instance(t, []byte(doc)))
		if (perr == nil) != (serr == nil) {
			t.Errorf("validator error %v, schema error %v; want both or neither, for\n%s", perr, serr, doc)
		}
	}
	for _, in := range rules.Instructions {
		for _, f := range in.Fields {
			for _, v := range samples(f) {
				t.Run(in.Name+"/"+f.Name+"="+v, func(t *testing.T) {
					var b strings.Builder
					b.WriteString("version: 1\nrules:\n  - name: r\n    when: true\n    do: " + in.Name + "\n    with:\n")
					for _, o := range in.Fields {
						if o.Required && o.Name != f.Name {
							fmt.Fprintf(&b, "      %s: %s\n", o.Name, samples(o)[0])
						}
					}
					fmt.Fprintf(&b, "      %s: %s\n", f.Name, v)
					check(t, b.String())
				})
			}
		}
	}
	keys := []struct{ key, value string }{
		{"delay", "2s"}, {"delay", "1m30s"}, {"delay", "1.5h"}, {"delay", ".5s"}, {"delay", "250ms"},
		{"delay", "0"}, {"delay", "0s"}, {"delay", "+2s"}, {"delay", "-1s"}, {"delay", "soon"},
		{"delay", "2"}, {"delay", `""`}, {"delay", "[2s]"},
		{"via", "rest"}, {"via", "response"}, {"via", "api"},
		{"name", "vip-voice"}, {"name", "9lives"}, {"name", "Bad_Name"}, {"name", "-x"}, {"name", `""`},
		{"when", "true"}, {"when", `"task.age > 3"`}, {"when", `""`}, {"when", "[a]"},
		{"description", "hello"}, {"description", "{a: 1}"},
	}
	for _, k := range keys {
		t.Run(k.key+"="+k.value, func(t *testing.T) {
			r := map[string]string{"name": "r", "when": "true", "do": "accept"}
			r[k.key] = k.value
			doc := "version: 1\nrules:\n  - name: " + r["name"] + "\n    when: " + r["when"] + "\n    do: " + r["do"] + "\n"
			for _, extra := range []string{"description", "via", "delay"} {
				if v, ok := r[extra]; ok {
					doc += "    " + extra + ": " + v + "\n"
				}
			}
			check(t, doc)
		})
	}
	for _, v := range []string{"wrap_up", "_x", "X9", "1bad", "a-b"} {
		t.Run("vars/"+v, func(t *testing.T) {
			check(t, "version: 1\nvars:\n  "+v+": 1\nrules: []\n")
		})
	}
	sched := func(zone, key, hours, closed string) string {
		return "version: 1\nschedules:\n  s:\n    timezone: " + zone + "\n    hours:\n      " + key + ": " + hours + "\n    closed: " + closed + "\nrules: []\n"
	}
	for _, v := range []string{"mon", "sun", "mon-fri", "fri-mon", "sun-sat", "daily", "mon-mon", "Monday", "weekdays", "mon-", "-fri", "mon-fri-sat"} {
		t.Run("hours/"+v, func(t *testing.T) { check(t, sched("UTC", v, `"08:00-18:00"`, "[]")) })
	}
	for _, v := range []string{`"08:00-18:00"`, `"22:00-06:00"`, `"00:00-24:00"`, `"23:59-00:00"`, `"09:00-09:00"`, `["09:00-12:00", "13:00-15:00"]`,
		`"24:00-06:00"`, `"08:00-24:30"`, `"8:00-18:00"`, `"08:00 - 18:00"`, `"13:60-15:00"`, `08:00-18:00`, `[]`, `~`, `{a: 1}`, `[[]]`} {
		t.Run("range/"+v, func(t *testing.T) { check(t, sched("UTC", "mon", v, "[]")) })
	}
	// Not compared: 2026-02-30, which has the shape of a date but is none.
	for _, v := range []string{"[2026-12-25]", `["2027-01-01"]`, "~", "[2026-13-01]", "[2026-1-1]", "[12/25/2026]", "2026-12-25", "[2026-12-25T00:00:00Z]"} {
		t.Run("closed/"+v, func(t *testing.T) { check(t, sched("UTC", "mon", `"08:00-18:00"`, v)) })
	}
	for _, v := range []string{"UTC", "America/New_York", "Europe/London", "Etc/GMT+5", "America/New_Yrok", "Local", "Chicago", `""`, "5"} {
		t.Run("timezone/"+v, func(t *testing.T) {
			check(t, sched(v, "mon", `"08:00-18:00"`, "[]"))
			check(t, "version: 1\ntimezone: "+v+"\nrules: []\n")
		})
	}
	// Not compared: version: 1.0, which JSON cannot tell from 1 but the validator refuses.
	for _, v := range []string{"1", `"1"`, "2", "one", "[1]"} {
		t.Run("version="+v, func(t *testing.T) {
			check(t, "version: "+v+"\n")
		})
	}
}

// samples are YAML values for a field, the first of them valid.
func samples(f rules.Field) []string {
	switch f.Kind {
	case rules.SID:
		hex := "0123456789abcdef0123456789abcdef"
		return []string{
			f.Prefix + hex, strings.ToLower(f.Prefix) + strings.ToUpper(hex), "XX" + hex,
			f.Prefix + hex[1:], f.Prefix + hex + "0", f.Prefix + "g" + hex[1:], "5",
			`"${ task.sid }"`,
		}
	case rules.URL:
		return []string{
			"https://example.com/x", "HTTP://EXAMPLE.COM", "https://example.com?q=1", "http://",
			"https:///x", "/path", "ftp://example.com", "mailto:a@example.com", "https://example.com/${ task.sid }",
		}
	case rules.Address:
		return []string{
			`"+15005550006"`, "+15005550006", "client:joey", `"client:"`, "sip:agent@example.com", `"sip:"`,
			`"5551234"`, `"+0123"`, `"+1234567890123456"`, "joey", "${ worker.attributes.contact_uri }",
		}
	case rules.Int:
		return []string{
			fmt.Sprint(f.Min), fmt.Sprint(f.Max), fmt.Sprint(f.Min - 1), fmt.Sprint(f.Max + 1),
			fmt.Sprintf("%d.0", f.Min), fmt.Sprintf("%d.5", f.Min), fmt.Sprintf(`"%d"`, f.Min), "true",
			"${ task.priority }", "${ task.priority }0",
		}
	case rules.Bool:
		return []string{"true", "false", `"true"`, "1", "${ task.priority > 1 }", "x${ task.priority > 1 }"}
	case rules.Enum:
		out := slices.Clone(f.Enum)
		return append(out, "nope", "true", "false", "1", `"${ task.sid }"`)
	case rules.List:
		return []string{
			"[" + f.Enum[0] + "]", "[" + strings.Join(f.Enum, ", ") + "]", strings.Join(f.Enum, ","),
			f.Enum[0] + " , " + f.Enum[len(f.Enum)-1], "[]", "[nope]", "nope", f.Enum[0] + ",,", "1",
			"${ task.attributes.events }",
		}
	}
	return []string{"text"}
}

func TestGenerateIsStable(t *testing.T) {
	a, err := schema.JSON()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := schema.JSON()
	if !bytes.Equal(a, b) {
		t.Error("schema.JSON() differs between calls")
	}
	if !bytes.Contains(a, []byte(`"$schema": "`+schema.Draft+`"`)) {
		t.Errorf("schema.JSON() does not name its draft %s", schema.Draft)
	}
}

// TestDraft07Compatible keeps the schema within what draft-07 validators (yaml-language-server
// and so most editors) understand the same way: no keyword newer than draft-07, and no $ref
// with siblings, which draft-07 ignores.
func TestDraft07Compatible(t *testing.T) {
	s, err := schema.Generate()
	if err != nil {
		t.Fatal(err)
	}
	newer := []string{"prefixItems", "unevaluatedProperties", "unevaluatedItems", "dependentRequired",
		"dependentSchemas", "$dynamicRef", "$dynamicAnchor", "$anchor", "minContains", "maxContains"}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if slices.Contains(newer, k) {
					t.Errorf("%s uses %s, which draft-07 does not know", path, k)
				}
				if _, ok := x["$ref"]; ok && k != "$ref" && k != "description" {
					t.Errorf("%s has %s beside $ref; draft-07 ignores it (wrap the $ref in allOf)", path, k)
				}
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s/%d", path, i), e)
			}
		}
	}
	walk("", s)
}
