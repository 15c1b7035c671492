package engine_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/rules"
)

// Every field of every instruction, by its key in the synchronous answer and by its REST
// name, as docs/rules.md lists them: conference's lists are singular in the answer
// (status_callback_event, conference_status_callback_event) while dequeue's stays plural.
func TestAnswerKeysAndRESTNames(t *testing.T) {
	set, err := rules.Parse("every-field.good.yaml", mustRead(t, "../testdata/good/every-field.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(set)
	tests := []struct {
		r        string // the fixture's task.attributes.r
		rule     string
		answer   []string
		rest     []string
		repeated map[string][]string // REST lists, one parameter per item
		joined   map[string]string   // the same lists in the answer, comma-separated
	}{
		{"1", "reject-all", []string{"activity_sid"}, []string{"ReservationStatus", "WorkerActivitySid"}, nil, nil},
		{"6", "reject-and-stay", nil, []string{"ReservationStatus"}, nil, nil},
		{"2", "dequeue-all",
			[]string{"to", "from", "post_work_activity_sid", "record", "timeout", "status_callback_url", "status_callback_events"},
			[]string{"Instruction", "DequeueTo", "DequeueFrom", "DequeuePostWorkActivitySid", "DequeueRecord", "DequeueTimeout", "DequeueStatusCallbackUrl", "DequeueStatusCallbackEvent"},
			map[string][]string{"DequeueStatusCallbackEvent": {"initiated", "ringing", "answered", "completed"}},
			map[string]string{"status_callback_events": "initiated,ringing,answered,completed"}},
		{"3", "call-all",
			[]string{"from", "url", "to", "accept", "record", "timeout", "status_callback_url"},
			[]string{"Instruction", "CallFrom", "CallUrl", "CallTo", "CallAccept", "CallRecord", "CallTimeout", "CallStatusCallbackUrl"}, nil, nil},
		{"4", "conference-all",
			[]string{"to", "from", "post_work_activity_sid", "timeout", "status_callback_url", "status_callback_method", "status_callback_event",
				"record", "muted", "beep", "start_conference_on_enter", "end_conference_on_exit", "end_conference_on_customer_exit",
				"beep_on_customer_entrance", "wait_url", "wait_method", "early_media", "max_participants", "conference_status_callback",
				"conference_status_callback_method", "conference_status_callback_event", "conference_record", "conference_trim",
				"recording_channels", "recording_status_callback", "recording_status_callback_method", "conference_recording_status_callback",
				"conference_recording_status_callback_method", "region", "sip_auth_username", "sip_auth_password", "jitter_buffer_size"},
			[]string{"Instruction", "To", "From", "PostWorkActivitySid", "Timeout", "StatusCallback", "StatusCallbackMethod", "StatusCallbackEvent",
				"Record", "Muted", "Beep", "StartConferenceOnEnter", "EndConferenceOnExit", "EndConferenceOnCustomerExit",
				"BeepOnCustomerEntrance", "WaitUrl", "WaitMethod", "EarlyMedia", "MaxParticipants", "ConferenceStatusCallback",
				"ConferenceStatusCallbackMethod", "ConferenceStatusCallbackEvent", "ConferenceRecord", "ConferenceTrim",
				"RecordingChannels", "RecordingStatusCallback", "RecordingStatusCallbackMethod", "ConferenceRecordingStatusCallback",
				"ConferenceRecordingStatusCallbackMethod", "Region", "SipAuthUsername", "SipAuthPassword", "JitterBufferSize"},
			map[string][]string{"StatusCallbackEvent": {"initiated", "completed"}, "ConferenceStatusCallbackEvent": {"start", "end", "join", "leave", "mute", "hold", "speaker"}},
			map[string]string{"status_callback_event": "initiated,completed", "conference_status_callback_event": "start,end,join,leave,mute,hold,speaker"}},
		{"5", "redirect-all", []string{"call_sid", "url", "accept"}, []string{"Instruction", "RedirectCallSid", "RedirectUrl", "RedirectAccept"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			d := e.Decide(callback(`{"r":`+tt.r+`,"call_sid":"CA00000000000000000000000000000009"}`, `{"contact_uri":"client:alice"}`), time.Time{})
			if d.Rule != tt.rule {
				t.Fatalf("Decide(r=%s) = %s (%v); want %s", tt.r, d.Rule, d.Err, tt.rule)
			}
			var answer map[string]any
			if err := json.Unmarshal(d.Answer(), &answer); err != nil {
				t.Fatalf("Answer() = %s: %v", d.Answer(), err)
			}
			if answer["instruction"] != d.Instruction() {
				t.Errorf("answer instruction = %v; want %s", answer["instruction"], d.Instruction())
			}
			delete(answer, "instruction")
			if diff := cmp.Diff(sorted(tt.answer), sorted(slices.Collect(maps.Keys(answer)))); diff != "" {
				t.Errorf("answer keys (-want +got):\n%s", diff)
			}
			form := d.Params().Form()
			if diff := cmp.Diff(sorted(tt.rest), sorted(slices.Collect(maps.Keys(form)))); diff != "" {
				t.Errorf("REST names (-want +got):\n%s", diff)
			}
			for k, v := range tt.repeated {
				if diff := cmp.Diff(v, form[k]); diff != "" {
					t.Errorf("REST %s (-want +got):\n%s", k, diff)
				}
			}
			for k, v := range tt.joined {
				if answer[k] != v {
					t.Errorf("answer %s = %v; want %q", k, answer[k], v)
				}
			}
		})
	}
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(s))
}

// A decision TaskRouter would fail for want of an attribute goes to on_error, with the
// attribute and the Twilio error named; one that has what it needs is answered.
func TestDecisionNeeds(t *testing.T) {
	const src = `version: 1
rules:
  - {name: dq, when: 'task.attributes.do == "dq"', do: dequeue}
  - {name: dq-to, when: 'task.attributes.do == "dq-to"', do: dequeue, with: {to: "client:desk"}}
  - {name: dq-tmpl, when: 'task.attributes.do == "dq-tmpl"', do: dequeue, with: {to: "${ worker.attributes.phone }"}}
  - {name: dq-rest, when: 'task.attributes.do == "dq-rest"', do: dequeue, via: rest, with: {from: "+15005550006"}}
  - {name: conf, when: 'task.attributes.do == "conf"', do: conference}
  - {name: conf-to, when: 'task.attributes.do == "conf-to"', do: conference, with: {to: "sip:agent@example.com"}}
  - {name: call, when: 'task.attributes.do == "call"', do: call, with: {from: "+15005550006", url: "https://example.com/a", accept: true}}
  - {name: call-to, when: 'task.attributes.do == "call-to"', do: call, with: {from: "+15005550006", url: "https://example.com/a", to: "+15551230000"}}
  - {name: move, when: 'task.attributes.do == "move"', do: redirect, with: {call_sid: "CA00000000000000000000000000000001", url: "https://example.com/a"}}
  - {name: take, when: 'task.attributes.do == "take"', do: accept}
default:
  do: dequeue
on_error:
  do: reject
`
	e := newEngine(t, src)
	const (
		sid     = `"call_sid":"CA00000000000000000000000000000001"`
		contact = `{"contact_uri":"client:alice"}`
		onError = `{"instruction":"reject"}`
	)
	tests := []struct {
		name, task, worker string
		rule               string // the rule that decides; on_error when its instruction cannot be carried out
		err                string // of Decision.Err, "" for none
	}{
		{"dequeue of an <Enqueue> task", `{"do":"dq",` + sid + `}`, contact, "dq", ""},
		{"dequeue without call_sid", `{"do":"dq"}`, contact, "on_error",
			"dq: dequeue needs task.attributes.call_sid (a task created by <Enqueue> has it), and it is missing: TaskRouter would fail the instruction with Twilio error 40140"},
		{"dequeue with an empty call_sid", `{"do":"dq","call_sid":""}`, contact, "on_error", "and it is empty: TaskRouter would fail the instruction with Twilio error 40140"},
		{"dequeue with a numeric call_sid", `{"do":"dq","call_sid":5}`, contact, "on_error", "and it is a number, not a string: TaskRouter would fail the instruction with Twilio error 40140"},
		{"dequeue to no one", `{"do":"dq",` + sid + `}`, `{}`, "on_error",
			"dq: dequeue has no to, so TaskRouter calls worker.attributes.contact_uri, and it is missing: TaskRouter would fail the instruction with Twilio error 40131; give to under with, or the worker a contact_uri"},
		{"dequeue to an empty contact_uri", `{"do":"dq",` + sid + `}`, `{"contact_uri":""}`, "on_error", "contact_uri, and it is empty"},
		{"dequeue with to, worker without contact_uri", `{"do":"dq-to",` + sid + `}`, `{}`, "dq-to", ""},
		{"dequeue whose to template gives null", `{"do":"dq-tmpl",` + sid + `}`, `{}`, "on_error", "error 40131"},
		{"dequeue whose to template gives a number", `{"do":"dq-tmpl",` + sid + `}`, `{"phone":"+15551230000"}`, "dq-tmpl", ""},
		{"dequeue by REST is checked too", `{"do":"dq-rest"}`, contact, "on_error", "error 40140"},
		{"conference of an inbound call", `{"do":"conf",` + sid + `}`, contact, "conf", ""},
		{"conference of an outbound call", `{"do":"conf","outbound_to":"+15551230000"}`, contact, "conf", ""},
		{"conference of neither", `{"do":"conf"}`, contact, "on_error",
			"conf: conference needs task.attributes.call_sid (an inbound call) or task.attributes.outbound_to (an outbound one), and the task has neither: TaskRouter would fail the instruction with Twilio error 40142"},
		{"conference to no one", `{"do":"conf",` + sid + `}`, `{}`, "on_error", "conference has no to, so TaskRouter calls worker.attributes.contact_uri, and it is missing: TaskRouter would fail the instruction with Twilio error 40137"},
		{"conference with to", `{"do":"conf-to",` + sid + `}`, `{}`, "conf-to", ""},
		{"call needs no call_sid", `{"do":"call"}`, contact, "call", ""},
		{"call to no one", `{"do":"call"}`, `{"contact_uri":7}`, "on_error", "call has no to, so TaskRouter calls worker.attributes.contact_uri, and it is a number, not a string: TaskRouter would fail the instruction with Twilio error 40110"},
		{"call with to", `{"do":"call-to"}`, `{}`, "call-to", ""},
		{"redirect is not checked", `{"do":"move"}`, `{}`, "move", ""},
		{"accept is not checked", `{"do":"take"}`, `{}`, "take", ""},
		{"default is checked", `{}`, contact, "on_error", "default: dequeue needs task.attributes.call_sid"},
		{"default that can be carried out", `{` + sid + `}`, contact, "default", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Explain(callback(tt.task, tt.worker), time.Time{})
			if d.Rule != tt.rule {
				t.Errorf("Explain() = %s (err %v); want %s", d.Rule, d.Err, tt.rule)
			}
			switch {
			case tt.err == "" && d.Err != nil:
				t.Errorf("Explain().Err = %v; want none", d.Err)
			case tt.err != "" && (d.Err == nil || !strings.Contains(d.Err.Error(), tt.err)):
				t.Errorf("Explain().Err = %v; want it to contain %q", d.Err, tt.err)
			}
			if tt.rule != "on_error" {
				return
			}
			if string(d.Response()) != onError || d.REST() {
				t.Errorf("Explain() answers %s (REST %t); want on_error's %s and no REST call", d.Response(), d.REST(), onError)
			}
			if last := d.Trace[len(d.Trace)-1]; !strings.HasPrefix(tt.err, "default") &&
				(last.Result != engine.Matched || !strings.HasPrefix(last.Error, "not carried out: ") || !strings.Contains(d.Err.Error(), strings.TrimPrefix(last.Error, "not carried out: "))) {
				t.Errorf("last step = %+v; want the rule matched, not carried out, and why", last)
			}
		})
	}
}

// on_error is held to the same needs; when it cannot be carried out either, the answer is {}.
func TestOnErrorNeeds(t *testing.T) {
	e := newEngine(t, "version: 1\nrules:\n  - {name: r, when: 'true', do: dequeue}\non_error:\n  do: conference\n")
	d := e.Decide(callback(`{}`, `{"contact_uri":"client:alice"}`), time.Time{})
	if d.Rule != "on_error" || string(d.Response()) != "{}" || d.Instruction() != rules.Defer {
		t.Errorf("Decide() = %s %s %s; want on_error answering {}", d.Rule, d.Instruction(), d.Response())
	}
	if d.Err == nil || !strings.Contains(d.Err.Error(), "40140") || !strings.Contains(d.Err.Error(), "on_error: conference needs") {
		t.Errorf("Decide().Err = %v; want both the rule's and on_error's reasons", d.Err)
	}
}

// A run-time error says which attribute held what: the trace, for the operator, with the
// value; the error that is logged, without it.
func TestRunTimeErrors(t *testing.T) {
	tests := []struct {
		when, task, worker string
		detail, logged     string // "" logged: the same as detail
	}{
		{`(worker.attributes.open_chats ?? 0) >= 3`, `{}`, `{"open_chats":"3"}`,
			`worker.attributes.open_chats is a string ("3"), compared with an int`, `worker.attributes.open_chats is a string, compared with an int`},
		{`3 < worker.attributes.open_chats`, `{}`, `{"open_chats":"3"}`,
			`worker.attributes.open_chats is a string ("3"), compared with an int`, `worker.attributes.open_chats is a string, compared with an int`},
		{`task.attributes.n > task.attributes.m`, `{"n":"3","m":true}`, `{}`,
			`task.attributes.n is a string ("3"), compared with task.attributes.m, a boolean (true)`, `task.attributes.n is a string, compared with task.attributes.m, a boolean`},
		{`task.attributes.score >= 1.5`, `{"score":[1]}`, `{}`,
			`task.attributes.score is a list, compared with a number`, ""},
		{`task.attributes.n + 1 > 2`, `{"n":"3"}`, `{}`,
			`task.attributes.n is a string ("3"), used in + with an int`, `task.attributes.n is a string, used in + with an int`},
		{`vars.limit < task.age`, `{}`, `{}`,
			`vars.limit is a string ("10"), compared with an int`, `vars.limit is a string, compared with an int`},
		{`task.attributes.customer.tier == "gold"`, `{"customer":"acme"}`, `{}`,
			`task.attributes.customer is a string ("acme"), not an object, so it has no tier`, `task.attributes.customer is a string, not an object, so it has no tier`},
		{`task.attributes.customer.tier == "gold"`, `{}`, `{}`,
			`task.attributes.customer is null, so it has no tier; write task.attributes.customer?.tier to get null instead of an error`, ""},
		{`task.attributes.a.b.c == 1`, `{"a":{"b":null}}`, `{}`,
			`task.attributes.a.b is null, so it has no c; write task.attributes.a.b?.c to get null instead of an error`, ""},
		{`"vip" in task.attributes.tags`, `{"tags":"vip"}`, `{}`,
			`task.attributes.tags is a string ("vip"), not a list or an object, so in cannot look into it`, `task.attributes.tags is a string, not a list or an object, so in cannot look into it`},
		{`task.attributes.name contains "x"`, `{"name":5}`, `{}`,
			`task.attributes.name is a number (5), but contains takes strings`, `task.attributes.name is a number, but contains takes strings`},
		{`task.attributes.flag && task.priority > 1`, `{"flag":"yes"}`, `{}`,
			`task.attributes.flag is a string ("yes"), but true or false is needed there`, `task.attributes.flag is a string, but true or false is needed there`},
		{`!task.attributes.flag`, `{"flag":"yes"}`, `{}`,
			`task.attributes.flag is a string ("yes"), but ! takes true or false`, `task.attributes.flag is a string, but ! takes true or false`},
		{`task.attributes.note > 1`, `{"note":"` + strings.Repeat("é", 50) + `"}`, `{}`,
			`task.attributes.note is a string ("` + strings.Repeat("é", 40) + `…"), compared with an int`, `task.attributes.note is a string, compared with an int`},
		// What cannot be placed keeps expr's own words.
		{`task.attributes.list[5] == 1`, `{"list":[1]}`, `{}`, `index out of range: 5 (array length is 1)`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			src := "version: 1\nvars: {limit: \"10\"}\nrules:\n  - name: r\n    when: '" + strings.ReplaceAll(tt.when, "'", "''") + "'\n    do: accept\n"
			e := newEngine(t, src)
			d := e.Explain(callback(tt.task, tt.worker), time.Time{})
			if len(d.Trace) != 1 || d.Trace[0].Result != engine.Failed || d.Trace[0].Error != tt.detail {
				t.Errorf("Explain().Trace = %+v; want r failed: %s", d.Trace, tt.detail)
			}
			logged := tt.logged
			if logged == "" {
				logged = tt.detail
			}
			if len(d.RuleErrors) != 1 || d.RuleErrors[0].Err.Error() != logged {
				t.Errorf("Explain().RuleErrors = %v; want %s", d.RuleErrors, logged)
			}
			if d := e.Decide(callback(tt.task, tt.worker), time.Time{}); len(d.RuleErrors) != 1 || d.RuleErrors[0].Err.Error() != logged {
				t.Errorf("Decide().RuleErrors = %v; want %s", d.RuleErrors, logged)
			}
		})
	}
}

// A template that fails at run time is worded the same way, and sends the callback to
// on_error with the value in the trace only.
func TestTemplateRunTimeError(t *testing.T) {
	e := newEngine(t, `version: 1
rules:
  - name: ring
    when: 'true'
    do: call
    with:
      from: "+15005550006"
      to: "+15551230000"
      url: https://example.com/a?n=${ task.attributes.n }
      timeout: ${ task.attributes.ring + 5 }
`)
	d := e.Explain(callback(`{"n":1,"ring":"ten"}`, `{}`), time.Time{})
	const logged = "ring: with timeout: task.attributes.ring is a string, used in + with an int"
	if d.Rule != "on_error" || d.Err == nil || d.Err.Error() != logged {
		t.Errorf("Explain() = %s, err %v; want on_error, %s", d.Rule, d.Err, logged)
	}
	if want := `not carried out: with timeout: task.attributes.ring is a string ("ten"), used in + with an int`; len(d.Trace) != 1 || d.Trace[0].Error != want {
		t.Errorf("Explain().Trace = %+v; want ring matched, %s", d.Trace, want)
	}
}
