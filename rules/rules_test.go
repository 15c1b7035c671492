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
		"reject-all":      {"activity_sid": "WA0123456789abcdef0123456789abcdef"},
		"reject-and-stay": {},
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
	// conference-all gives every field conference takes, each once.
	conf := rules.Lookup("conference")
	if got := consts("conference-all"); len(got) != len(conf.Fields) {
		var missing []string
		for _, f := range conf.Fields {
			if _, ok := got[f.Name]; !ok {
				missing = append(missing, f.Name)
			}
		}
		t.Errorf("conference-all gives %d fields; conference takes %d (missing %v)", len(got), len(conf.Fields), missing)
	}
	wantConf := map[string]any{
		"status_callback_method": "GET", "wait_method": "GET", "conference_status_callback_method": "POST",
		"conference_trim": "do-not-trim", "recording_channels": "dual", "recording_status_callback_method": "GET",
		"conference_recording_status_callback": "https://example.com/cr", "conference_recording_status_callback_method": "POST",
		"region": "ie1", "sip_auth_username": "agent", "sip_auth_password": "s3cret: with a colon", "jitter_buffer_size": "off",
	}
	c := consts("conference-all")
	for k, v := range wantConf {
		if c[k] != v {
			t.Errorf("conference-all %s = %#v; want %#v", k, c[k], v)
		}
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
		{"reject", "activity_sid", "${ task.attributes.next_activity }", ""},
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
		{"conference", "status_callback_events", "[initiated, answered]", ""},
		{"conference", "status_callback_events", "[join]", `"join" is not one of them`},
		{"conference", "status_callback_method", "GET", ""},
		{"conference", "status_callback_method", "POST", ""},
		{"conference", "status_callback_method", "get", `status_callback_method must be one of GET, POST, not "get"`},
		{"conference", "status_callback_method", "PUT", `status_callback_method must be one of GET, POST, not "PUT"`},
		{"conference", "wait_method", "GET", ""},
		{"conference", "wait_method", "DELETE", "wait_method must be one of GET, POST"},
		{"conference", "conference_status_callback_method", "POST", ""},
		{"conference", "conference_status_callback_method", "true", "conference_status_callback_method must be one of GET, POST"},
		{"conference", "recording_status_callback_method", "GET", ""},
		{"conference", "recording_status_callback_method", "[GET]", "recording_status_callback_method must be one of GET, POST, not a list"},
		{"conference", "conference_recording_status_callback", "https://example.com/cr", ""},
		{"conference", "conference_recording_status_callback", "ftp://example.com/cr", "conference_recording_status_callback must be an absolute http(s) URL"},
		{"conference", "conference_recording_status_callback_method", "POST", ""},
		{"conference", "conference_recording_status_callback_method", "PATCH", "conference_recording_status_callback_method must be one of GET, POST"},
		{"conference", "recording_channels", "mono", ""},
		{"conference", "recording_channels", "dual", ""},
		{"conference", "recording_channels", "stereo", `recording_channels must be one of mono, dual, not "stereo"`},
		{"conference", "conference_trim", "trim-silence", ""},
		{"conference", "conference_trim", "do-not-trim", ""},
		{"conference", "conference_trim", "trim", `conference_trim must be one of trim-silence, do-not-trim, not "trim"`},
		{"conference", "region", "us1", ""},
		{"conference", "region", "jp1", ""},
		{"conference", "region", "eu1", `region must be one of us1, us2, ie1, de1, sg1, br1, au1, jp1, not "eu1"`},
		{"conference", "sip_auth_username", "agent-7", ""},
		{"conference", "sip_auth_username", "${ worker.attributes.sip_user }", ""},
		{"conference", "sip_auth_username", "{a: 1}", "sip_auth_username must be a string, not a mapping"},
		{"conference", "sip_auth_password", "'12345'", ""},
		{"conference", "sip_auth_password", "${ task.priority }", "sip_auth_password must be a string, but the expression gives a number"},
		{"conference", "jitter_buffer_size", "off", ""},
		{"conference", "jitter_buffer_size", "large", ""},
		{"conference", "jitter_buffer_size", "huge", `jitter_buffer_size must be one of off, small, medium, large, not "huge"`},
		{"conference", "conference_record", "do-not-record", ""},
		{"conference", "conference_record", "record-from-answer", "conference_record must be one of true, false, record-from-start, do-not-record"},
		{"conference", "early_media", "false", ""},
		{"conference", "start_conference_on_enter", "no", `start_conference_on_enter must be true or false, not the string "no"`},
	}
	for _, tt := range tests {
		required := map[string]string{
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

// Each lint, from a small file: the warnings it gives (FILE:LINE:COL and message
// prefix), and none where the file does what the lint asks.
func TestLint(t *testing.T) {
	const head = "version: 1\nrules:\n"
	const voice = "  - name: voice\n    when: task.attributes.call_sid != nil\n    do: dequeue\n"
	const conference = "  - name: conf\n    when: task.attributes.call_sid != nil\n    do: conference\n"
	accept := func(when string) string {
		return "  - name: take\n    when: " + when + "\n    do: accept\n"
	}
	restCall := func(extra string) string {
		return "  - name: ring\n    when: true\n    do: call\n    via: rest\n    with:\n      from: '+15005550006'\n      url: https://example.com/a\n" + extra
	}
	const repeatCall = "rule ring: call by REST without accept: true: the outbox delivers at least once, and a repeat while the reservation is still pending places a second call to the worker; add accept: true under with"
	const acceptsVoice = "rule take accepts voice tasks too: its when does not exclude tasks with a call_sid"
	tests := []struct {
		name    string
		src     string
		timeout time.Duration
		want    []string // prefixes of the warnings, in order
	}{
		{"unused var, unreachable rule", "version: 1\nvars:\n  used: WA0123456789abcdef0123456789abcdef\n  unused: 3\nrules:\n" +
			"  - name: catch-all\n    when: true\n    do: reject\n    with:\n      activity_sid: ${ vars.used }\n" +
			"  - name: after\n    when: task.age > 1\n    do: accept\n    via: rest\n", 0, []string{
			"f.yaml:4:3: warning: var unused is never used; use it as ${ vars.unused } or remove it",
			"f.yaml:11:5: warning: rule after can never match: rule catch-all above it always matches (when: true); move it above catch-all or remove it",
		}},
		{"REST without credentials is not check's business", head + "  - name: r\n    when: true\n    do: accept\n    via: rest\n", 0, nil},

		{"call via rest without accept", head + restCall(""), 0, []string{"f.yaml:5:5: warning: " + repeatCall}},
		{"call via rest, accept: false", head + restCall("      accept: false\n"), 0, []string{"f.yaml:10:15: warning: " + repeatCall}},
		{"call via rest, accept from a template", head + restCall("      accept: ${ task.priority > 1 }\n"), 0, []string{"f.yaml:10:15: warning: " + repeatCall}},
		{"call via rest, accept: true", head + restCall("      accept: true\n"), 0, nil},
		{"call with a delay, no via", head + "  - name: ring\n    when: true\n    do: call\n    delay: 1s\n    with: {from: '+15005550006', url: 'https://example.com/a'}\n", 0,
			[]string{"f.yaml:5:5: warning: " + repeatCall}},
		{"call in the answer needs no accept", head + "  - name: ring\n    when: true\n    do: call\n    with: {from: '+15005550006', url: 'https://example.com/a'}\n", 0, nil},
		{"redirect via rest without accept", head + "  - name: move\n    when: true\n    do: redirect\n    via: rest\n    with: {call_sid: CA0123456789abcdef0123456789abcdef, url: 'https://example.com/a'}\n", 0,
			[]string{"f.yaml:5:5: warning: rule move: redirect by REST without accept: true: the outbox delivers at least once, and a repeat while the reservation is still pending redirects the call a second time"}},
		{"redirect via rest, accept: true", head + "  - name: move\n    when: true\n    do: redirect\n    via: rest\n    with: {call_sid: CA0123456789abcdef0123456789abcdef, url: 'https://example.com/a', accept: true}\n", 0, nil},
		{"dequeue via rest is not repeated", head + "  - name: dq\n    when: true\n    do: dequeue\n    via: rest\n    with: {from: '+15005550006'}\n", 0, nil},
		{"default: call via rest", "version: 1\nrules: []\ndefault:\n  do: call\n  via: rest\n  with: {from: '+15005550006', url: 'https://example.com/a'}\n", 0,
			[]string{"f.yaml:4:3: warning: default: call by REST without accept: true"}},
		{"a rule named default is a rule", head + "  - name: default\n    when: true\n    do: call\n    via: rest\n    with: {from: '+15005550006', url: 'https://example.com/a'}\n", 0,
			[]string{"f.yaml:5:5: warning: rule default: call by REST without accept: true"}},

		{"delay beyond the timeout", head + "  - name: later\n    when: true\n    do: accept\n    delay: 10m\n", 120 * time.Second,
			[]string{"f.yaml:6:12: warning: rule later: delay 10m0s is not shorter than the reservation timeout (2m0s, --reservation-timeout): the reservation times out first, so the action is always abandoned"}},
		{"delay at the timeout", head + "  - name: later\n    when: true\n    do: accept\n    delay: 2m\n", 120 * time.Second,
			[]string{"f.yaml:6:12: warning: rule later: delay 2m0s is not shorter than the reservation timeout (2m0s"}},
		{"delay under the timeout", head + "  - name: later\n    when: true\n    do: accept\n    delay: 119s\n", 120 * time.Second, nil},
		{"delay under a longer timeout", head + "  - name: later\n    when: true\n    do: accept\n    delay: 10m\n", 15 * time.Minute, nil},
		{"no timeout given: no delay check", head + "  - name: later\n    when: true\n    do: accept\n    delay: 10m\n", 0, nil},
		{"on_error's delay", "version: 1\nrules: []\non_error:\n  do: accept\n  delay: 5m\n", 120 * time.Second,
			[]string{"f.yaml:5:10: warning: on_error: delay 5m0s is not shorter"}},

		{"accept above dequeue", head + accept(`task.attributes.tier == "gold"`) + voice, 0,
			[]string{"f.yaml:4:11: warning: " + acceptsVoice + ", and accept does not connect a queued call, so the caller stays on hold while rule voice below it (dequeue) would have connected them; start the when with task.attributes.call_sid == nil &&, or move take below the voice rules"}},
		{"accept above conference", head + accept(`task.priority > 3`) + conference, 0,
			[]string{"f.yaml:4:11: warning: " + acceptsVoice + ", and accept does not connect a queued call, so the caller stays on hold while rule conf below it (conference)"}},
		{"accept of voice tasks itself", head + accept(`task.attributes.call_sid != nil && task.priority > 3`) + voice, 0, []string{"f.yaml:4:11: warning: " + acceptsVoice}},
		{"accept that excludes voice", head + accept(`task.attributes.call_sid == nil && task.attributes.tier == "gold"`) + voice, 0, nil},
		{"call_sid == nil last", head + accept(`task.attributes.tier == "gold" && task.attributes.call_sid == nil`) + voice, 0, nil},
		{"nil == call_sid", head + accept(`nil == task.attributes.call_sid`) + voice, 0, nil},
		{"inside parentheses", head + accept(`task.priority > 1 && (task.attributes.call_sid == nil && task.age > 2)`) + voice, 0, nil},
		{"! call_sid != nil", head + accept(`'!(task.attributes.call_sid != nil)'`) + voice, 0, nil},
		{"not call_sid != nil", head + accept(`not (task.attributes.call_sid != nil)`) + voice, 0, nil},
		{"with ?.", head + accept(`task.attributes?.call_sid == nil`) + voice, 0, nil},
		{"or does not exclude", head + accept(`task.attributes.call_sid == nil || task.priority > 3`) + voice, 0, []string{"f.yaml:4:11: warning: " + acceptsVoice}},
		{"another attribute == nil does not exclude", head + accept(`task.attributes.channel == nil`) + voice, 0, []string{"f.yaml:4:11: warning: " + acceptsVoice}},
		{"accept below the voice rules", head + voice + accept(`task.attributes.tier == "gold"`), 0, nil},
		{"no voice rule below", head + accept(`task.attributes.tier == "gold"`) + "  - name: move\n    when: true\n    do: redirect\n    with: {call_sid: CA0123456789abcdef0123456789abcdef, url: 'https://example.com/a', accept: true}\n", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := rules.Parse("f.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, tt.src)
			}
			got := set.Lint(tt.timeout)
			if len(got) != len(tt.want) {
				t.Fatalf("Lint(%v) = %q; want %d warnings starting %q", tt.timeout, got, len(tt.want), tt.want)
			}
			for i, d := range got {
				if !strings.HasPrefix(d.String(), tt.want[i]) || !d.Warning {
					t.Errorf("Lint(%v)[%d] = %q; want a warning starting %q", tt.timeout, i, d, tt.want[i])
				}
			}
		})
	}
}

// The example as it shipped before its rewrite taught accept for voice tasks; check warns
// of both rules that did it, and of nothing in the example that replaced it.
func TestLintExample(t *testing.T) {
	old, err := rules.Parse("old-example.yaml", mustRead(t, "../testdata/rules/old-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range old.Lint(120 * time.Second) {
		got = append(got, d.String())
	}
	want := []string{
		"old-example.yaml:56:11: warning: rule high-value accepts voice tasks too: its when does not exclude tasks with a call_sid, and accept does not connect a queued call, so the caller stays on hold while rule voice below it (dequeue) would have connected them; start the when with task.attributes.call_sid == nil &&, or move high-value below the voice rules",
		"old-example.yaml:61:11: warning: rule chat-and-sms accepts voice tasks too: its when does not exclude tasks with a call_sid, and accept does not connect a queued call, so the caller stays on hold while rule voice below it (dequeue) would have connected them; start the when with task.attributes.call_sid == nil &&, or move chat-and-sms below the voice rules",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Lint(old example) (-want +got):\n%s", diff)
	}

	set, err := rules.Parse("rules.yaml", mustRead(t, "../testdata/example/rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if ds := set.Lint(120 * time.Second); len(ds) > 0 {
		t.Errorf("Lint(example) = %q; want no warnings", ds)
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
    do: redirect
    with: {url: "https://example.com/vip"}
  - name: vip
    when: task.priority > "high"
    do: dequeue
    with:
      timeout: 0
`
	_, err := rules.Parse("rules.yaml", []byte(src))
	fmt.Println(err)
	// Output:
	// rules.yaml:5:5: rule vip: redirect needs call_sid under with: a SID: CA followed by 32 hex digits, like CA0123456789abcdef0123456789abcdef
	// rules.yaml:7:11: rule name "vip" is used twice (first at line 3); names must be unique
	// rules.yaml:8:25: when of rule vip: invalid operation: > (mismatched types int and string)
	// rules.yaml:11:16: rule vip: timeout must be an integer from 1 to 999, not 0
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
