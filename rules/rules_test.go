package rules_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/rules"
)

// Each testdata/bad/NAME.bad.yaml must give exactly the lines in NAME.errors, all at once.
func TestBadFixtures(t *testing.T) {
	files, err := filepath.Glob("../testdata/bad/*.bad.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data := mustRead(t, path)
			want := strings.TrimRight(string(mustRead(t, strings.TrimSuffix(path, ".bad.yaml")+".errors")), "\n")
			set, err := rules.Parse(name, data)
			if set != nil {
				t.Fatalf("Parse(%s) returned a rule set for a bad file", name)
			}
			var re rules.Errors
			if !errors.As(err, &re) {
				t.Fatalf("Parse(%s) error = %v; want rules.Errors", name, err)
			}
			if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(re.Error(), "\n")); diff != "" {
				t.Errorf("Parse(%s) errors differ (-want +got):\n%s", name, diff)
			}
		})
	}
}

func TestGoodFixtures(t *testing.T) {
	files, _ := filepath.Glob("../testdata/good/*.good.yaml")
	files = append(files, "../testdata/example/rules.yaml", "../testdata/hours/rules.yaml")
	for _, path := range files {
		if _, err := rules.Parse(path, mustRead(t, path)); err != nil {
			t.Errorf("Parse(%s) = %v; want no error", path, err)
		}
	}
}

func TestParseEveryField(t *testing.T) {
	set, err := rules.Parse("every-field", mustRead(t, "../testdata/good/every-field.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	consts := func(rule string) map[string]any {
		out := map[string]any{}
		for _, p := range set.Rule(rule).With {
			if p.Const {
				out[p.Field.Name] = p.Value
			} else {
				out[p.Field.Name] = "template: " + p.Tmpl.Source
			}
		}
		return out
	}
	want := map[string]map[string]any{
		"reject-all": {"activity_sid": "WA0123456789abcdef0123456789abcdef"},
		"dequeue-all": {
			"to": "sip:agent@example.com", "from": "+15005550006", // unquoted: taken as written, not as a number
			"post_work_activity_sid": "WA0123456789ABCDEF0123456789ABCDEF",
			"record":                 "do-not-record", "timeout": 999, "status_callback_url": "http://example.com/s",
			"status_callback_events": []string{"initiated", "ringing", "answered", "completed"}, // from a vars list
		},
		"redirect-all": {
			"call_sid": "template: ${ task.attributes.call_sid }", "url": "https://example.com/r",
			"accept": "template: ${ task.priority > 3 }",
		},
	}
	for rule, w := range want {
		if diff := cmp.Diff(w, consts(rule)); diff != "" {
			t.Errorf("rule %s with (-want +got):\n%s", rule, diff)
		}
	}
	if r := set.Rule("call-all"); r.Via != rules.REST || r.Delay != time.Minute {
		t.Errorf("call-all: via %s delay %s; want rest 1m0s", r.Via, r.Delay)
	}
	if set.Default.Do != "accept" || set.Default.Via != rules.REST {
		t.Errorf("default = %s via %s; want accept via rest", set.Default.Do, set.Default.Via)
	}
	if set.OnError.Do != rules.Defer {
		t.Errorf("on_error = %s; want defer", set.OnError.Do)
	}
	if c := consts("conference-all"); c["beep"] != "false" || c["max_participants"] != 2 || c["muted"] != false {
		t.Errorf("conference-all: beep %#v max_participants %#v muted %#v; want \"false\" 2 false", c["beep"], c["max_participants"], c["muted"])
	}
}

func TestDefaultsWhenOmitted(t *testing.T) {
	set, err := rules.Parse("f", []byte("version: 1\nrules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*rules.Action{set.Default, set.OnError} {
		if a.Do != rules.Defer || a.Via != rules.Response {
			t.Errorf("%s = %s via %s; want defer via response", a.Name, a.Do, a.Via)
		}
	}
	if len(set.Revision) != 64 {
		t.Errorf("Revision = %q; want a sha256 in hex", set.Revision)
	}
}

// One rule with one instruction and one field, checked the way the file would be.
func TestFieldValidation(t *testing.T) {
	tests := []struct {
		do, field, value string
		want             string // substring of the single error; "" = valid
	}{
		{"reject", "activity_sid", "WA0123456789abcdef0123456789abcdef", ""},
		{"reject", "activity_sid", "wa0123456789abcdef0123456789ABCDEF", ""},
		{"reject", "activity_sid", "WA0123456789abcdef0123456789abcde", "activity_sid must be a SID: WA followed by 32 hex digits"},
		{"reject", "activity_sid", "WA0123456789abcdef0123456789abcdeg", "must be a SID"},
		{"reject", "activity_sid", "12", "must be a SID"},
		{"reject", "timeout", "5", `unknown key "timeout" in rule r with; valid keys are activity_sid`},
		{"dequeue", "timeout", "1", ""},
		{"dequeue", "timeout", "999", ""},
		{"dequeue", "timeout", "1000", "timeout must be an integer from 1 to 999, not 1000"},
		{"dequeue", "timeout", "2.5", "timeout must be an integer from 1 to 999, not the number 2.5"},
		{"dequeue", "timeout", `"20"`, `not the string "20"`},
		{"dequeue", "record", "record-from-answer", ""},
		{"dequeue", "record", "true", `record must be one of record-from-answer, do-not-record, not "true"`},
		{"dequeue", "status_callback_events", "[completed]", ""},
		{"dequeue", "status_callback_events", "initiated, completed", ""},
		{"dequeue", "status_callback_events", "[]", "not an empty list"},
		{"dequeue", "status_callback_events", "[start]", `"start" is not one of them`},
		{"dequeue", "status_callback_events", "[1]", "an item is the number 1"},
		{"dequeue", "to", "+15005550006", ""},
		{"dequeue", "to", "client:alice", ""},
		{"dequeue", "to", "sip:alice@example.com", ""},
		{"dequeue", "to", "+0123", "to must be a phone number in E.164 form"},
		{"dequeue", "to", "alice", "to must be a phone number"},
		{"dequeue", "status_callback_url", "https://example.com/a?b=c", ""},
		{"dequeue", "status_callback_url", "example.com/a", "must be an absolute http(s) URL"},
		{"dequeue", "status_callback_url", "https:///a", "must be an absolute http(s) URL"},
		{"call", "accept", "true", ""},
		{"call", "accept", "yes", `accept must be true or false, not the string "yes"`},
		{"call", "record", "do-not-record", ""},
		{"redirect", "call_sid", "CA0123456789abcdef0123456789abcdef", ""},
		{"redirect", "call_sid", "WA0123456789abcdef0123456789abcdef", "call_sid must be a SID: CA followed by 32 hex digits"},
		{"conference", "beep", "onExit", ""},
		{"conference", "beep", "true", ""},
		{"conference", "beep", "yes", `beep must be one of true, false, onEnter, onExit, not "yes"`},
		{"conference", "record", "true", ""},
		{"conference", "record", "record-from-answer", "record must be true or false"},
		{"conference", "max_participants", "250", ""},
		{"conference", "max_participants", "1", "max_participants must be an integer from 2 to 250, not 1"},
		{"conference", "conference_record", "record-from-start", ""},
		{"conference", "conference_status_callback_events", "[speaker, hold]", ""},
		{"conference", "conference_status_callback_events", "[ringing]", `"ringing" is not one of them`},
		{"conference", "to", "{a: 1}", "to must be a phone number"},
		{"conference", "wait_url", "${ task.attributes.music }", ""},
		{"conference", "muted", "${ task.attributes.muted == true }", ""},
		{"conference", "muted", "${ task.sid }", "muted must be true or false, but the expression gives a string"},
		{"conference", "timeout", "${ task.age }", ""},
		{"conference", "timeout", "${ 5000 }", "timeout must be an integer from 1 to 999, not 5000"},
	}
	for _, tt := range tests {
		required := map[string]string{
			"reject":   "activity_sid: WA0123456789abcdef0123456789abcdef",
			"call":     "from: '+15005550006'\n      url: https://example.com/a",
			"redirect": "call_sid: CA0123456789abcdef0123456789abcdef\n      url: https://example.com/a",
		}[tt.do]
		var with []string
		for _, line := range strings.Split(required, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, tt.field+":") {
				with = append(with, line)
			}
		}
		with = append(with, tt.field+": "+tt.value)
		src := fmt.Sprintf("version: 1\nrules:\n  - name: r\n    when: true\n    do: %s\n    with:\n      %s\n", tt.do, strings.Join(with, "\n      "))
		fieldLine := 6 + len(with)
		_, err := rules.Parse("f.yaml", []byte(src))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s %s: %s: Parse error = %v; want none", tt.do, tt.field, tt.value, err)
		case tt.want != "" && err == nil:
			t.Errorf("%s %s: %s: Parse error = nil; want %q", tt.do, tt.field, tt.value, tt.want)
		case tt.want != "":
			var re rules.Errors
			if !errors.As(err, &re) || len(re) != 1 || !strings.Contains(re[0].Msg, tt.want) {
				t.Errorf("%s %s: %s: Parse error = %v; want one error containing %q", tt.do, tt.field, tt.value, err, tt.want)
			} else if re[0].Pos.Line != fieldLine {
				t.Errorf("%s %s: %s: error at line %d; want line %d: %v", tt.do, tt.field, tt.value, re[0].Pos.Line, fieldLine, err)
			}
		}
	}
}

func TestLint(t *testing.T) {
	src := `version: 1
vars:
  used: WA0123456789abcdef0123456789abcdef
  unused: 3
rules:
  - name: catch-all
    when: true
    do: reject
    with:
      activity_sid: ${ vars.used }
  - name: after
    when: task.age > 1
    do: accept
    via: rest
`
	set, err := rules.Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := func(ds []rules.Diagnostic) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.String())
		}
		return out
	}
	want := []string{
		"f.yaml:4:3: warning: var unused is never used; use it as ${ vars.unused } or remove it",
		"f.yaml:11:5: warning: rule after can never match: rule catch-all above it always matches (when: true); move it above catch-all or remove it",
	}
	if diff := cmp.Diff(want, got(set.Lint(true))); diff != "" {
		t.Errorf("Lint(credentials) (-want +got):\n%s", diff)
	}
	withoutCreds := got(set.Lint(false))
	if len(withoutCreds) != 3 || !strings.HasPrefix(withoutCreds[2], "f.yaml:13:5: warning: after sends by REST but no Twilio credentials are set") {
		t.Errorf("Lint(no credentials) = %q; want the two warnings and one about REST without credentials at 13:5", withoutCreds)
	}
}

func TestExprErrorPositions(t *testing.T) {
	tests := []struct {
		when string
		want string
	}{
		{`task.attributes.x == "a" && task.nope`, "f.yaml:4:44: when of rule r: task has no field nope"},
		{`"task.age > "`, "f.yaml:4:22: when of rule r: unexpected token EOF"},
		{"|\n      task.age > 3 &&\n      worker.foo", "f.yaml:6:14: when of rule r: worker has no field foo"},
	}
	for _, tt := range tests {
		src := "version: 1\nrules:\n  - name: r\n    when: " + tt.when + "\n    do: accept\n"
		_, err := rules.Parse("f.yaml", []byte(src))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("when %q: error %v; want prefix %q", tt.when, err, tt.want)
		}
	}
}

func ExampleParse() {
	src := `version: 1
rules:
  - name: vip
    when: task.attributes.vip == true
    do: reject
  - name: vip
    when: task.priority > "high"
    do: dequeue
    with:
      timeout: 0
`
	_, err := rules.Parse("rules.yaml", []byte(src))
	fmt.Println(err)
	// Output:
	// rules.yaml:5:5: rule vip: reject needs activity_sid under with: a SID: WA followed by 32 hex digits, like WA0123456789abcdef0123456789abcdef
	// rules.yaml:6:11: rule name "vip" is used twice (first at line 3); names must be unique
	// rules.yaml:7:25: when of rule vip: invalid operation: > (mismatched types int and string)
	// rules.yaml:10:16: rule vip: timeout must be an integer from 1 to 999, not 0
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
