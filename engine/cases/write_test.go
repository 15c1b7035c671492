package cases

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// A callback written as a .yaml case reads back as the same callback: every parameter's
// text, the attributes equal as JSON; and the attributes are mappings, not JSON strings.
func TestFormatYAMLRoundTrips(t *testing.T) {
	params := url.Values{
		"ReservationSid":   {"WR0123456789abcdef0123456789abcdef"},
		"TaskSid":          {"WT0123456789abcdef0123456789abcdef"},
		"TaskAge":          {"600"},
		"TaskPriority":     {"0"},
		"Timestamp":        {"2026-03-09T09:15:00-04:00"},
		"TaskAttributes":   {`{"channel":"voice","from":"+15551230000","n":"123","vip":"true","skills":["a",1,null],"nested":{"a":{}},"colon":"a: b","empty":"","note":"line\nbreak","x":1.5}`},
		"WorkerAttributes": {`{"contact_uri": "client:alice", "open_chats": 2}`},
		"WorkerName":       {"null"},
		"Custom":           {"- not a list"},
		"Blank":            {""},
		"Tilde":            {"~"},
		"Yes":              {"yes"},
	}
	out, err := FormatYAML(params)
	if err != nil {
		t.Fatal(err)
	}
	back, warnings, err := Parse("c.yaml", out)
	if err != nil {
		t.Fatalf("Parse(FormatYAML) = %v\n%s", err, out)
	}
	if len(warnings) != 4 { // Blank, Custom, Tilde, Yes; WorkerName is a callback parameter
		t.Errorf("warnings = %v; want the four parameters TaskRouter does not send", warnings)
	}
	for k, vs := range params {
		got, want := back.Get(k), vs[0]
		if k == "TaskAttributes" || k == "WorkerAttributes" {
			var a, b any
			if json.Unmarshal([]byte(got), &a) != nil || json.Unmarshal([]byte(want), &b) != nil || !reflect.DeepEqual(a, b) {
				t.Errorf("%s read back as %s; want %s", k, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("%s read back as %q; want %q\n%s", k, got, want, out)
		}
	}
	// The parameters TaskRouter sends come first, in its order; attributes are mappings.
	const head = "TaskSid: WT0123456789abcdef0123456789abcdef\nTaskAge: 600\nTaskPriority: 0\nTaskAttributes:\n  channel: voice\n"
	if !strings.HasPrefix(string(out), head) {
		t.Errorf("FormatYAML starts %q; want %q", out[:len(head)], head)
	}
	for _, want := range []string{"WorkerAttributes:\n  contact_uri: client:alice\n  open_chats: 2\nReservationSid: WR", "  from: \"+15551230000\"\n", "  n: \"123\"\n", "Timestamp: 2026-03-09T09:15:00-04:00\n", "Blank: \"\"\n", "WorkerName: \"null\"\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("FormatYAML lacks %q:\n%s", want, out)
		}
	}
	// Attributes that are not a JSON object stay the text they are.
	out, _ = FormatYAML(url.Values{"TaskAttributes": {"{not json"}, "WorkerAttributes": {"[1]"}})
	back, _, _ = Parse("c.yaml", out)
	if back.Get("TaskAttributes") != "{not json" || back.Get("WorkerAttributes") != "[1]" {
		t.Errorf("bad attributes read back as %v:\n%s", back, out)
	}
}
