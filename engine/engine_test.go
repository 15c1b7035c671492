package engine_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

func newEngine(t testing.TB, src string) *engine.Engine {
	t.Helper()
	set, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(set)
}

// callback is a callback for reservation 9 with the given attributes ("-" leaves them out)
// and extra parameters as name, value pairs.
func callback(task, worker string, extra ...string) url.Values {
	v := testkit.CallbackWith(9, task, worker)
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func TestDecideAnswers(t *testing.T) {
	e := newEngine(t, testkit.Rules(t, "engine"))
	onError := `{"instruction":"reject","activity_sid":"WA00000000000000000000000000000001"}`
	tests := []struct {
		name         string
		params       url.Values
		rule, answer string
		errContains  string // of Decision.Err
	}{
		{"dequeue with every field", callback(`{"case":"dequeue","ring":12,"call_sid":"CA00000000000000000000000000000009"}`, `{"direct_line":"+15557654321"}`), "dequeue",
			`{"instruction":"dequeue","to":"+15557654321","from":"+15005550006","post_work_activity_sid":"WA00000000000000000000000000000002","record":"record-from-answer","timeout":12,"status_callback_url":"https://example.com/s/WT00000000000000000000000000000009","status_callback_events":"initiated,completed"}`, ""},
		{"optional nil is left out (TaskRouter calls contact_uri), ?? default applies", callback(`{"case":"dequeue","call_sid":"CA00000000000000000000000000000009"}`, `{"contact_uri":"client:alice"}`), "dequeue",
			`{"instruction":"dequeue","from":"+15005550006","post_work_activity_sid":"WA00000000000000000000000000000002","record":"record-from-answer","timeout":20,"status_callback_url":"https://example.com/s/WT00000000000000000000000000000009","status_callback_events":"initiated,completed"}`, ""},
		{"integral JSON numbers print as integers, strings are escaped", callback(`{"case":"text","n":42,"name":"O\"Neil \\ <é> \u2028"}`, `{"contact_uri":"client:alice"}`), "text",
			`{"instruction":"call","from":"+15005550006","url":"https://example.com/a?n=42&name=O\"Neil \\ <é> \u2028"}`, ""},
		{"nil in text template leaves the field out: required field → on_error", callback(`{"case":"text","n":1}`, `{}`), "on_error",
			onError, "with url: the template gave null but url is required"},
		{"required field from a missing attribute", callback(`{"case":"required-nil"}`, `{}`), "on_error", onError, "call_sid"},
		{"timeout out of range at run time", callback(`{"case":"dequeue","ring":0}`, `{}`), "on_error", onError, "timeout must be an integer from 1 to 999, not 0"},
		{"timeout of the wrong type at run time", callback(`{"case":"dequeue","ring":"soon"}`, `{}`), "on_error", onError, `timeout must be an integer from 1 to 999, not the string "soon"`},
		{"via rest answers {}", callback(`{"case":"accept-rest"}`, `{}`), "accept-rest", `{}`, ""},
		{"when failing at run time does not match; default defers", callback(`{"number":"x"}`, `{}`), "default", `{}`, ""},
		{"runtime error, then a later rule matches", callback(`{"number":"x","case":"dequeue-rest","call_sid":"CA00000000000000000000000000000009"}`, `{}`), "dequeue-rest", `{}`, ""},
		{"params, age, priority, reservation and workspace", callback(`{}`, `{}`, "Custom", "yes", "TaskAge", "61", "TaskPriority", "2", "ReservationSid", "WR1", "WorkspaceSid", "WS1"), "params", `{"instruction":"accept"}`, ""},
		{"TaskAttributes missing", callback("-", `{}`), "on_error", onError, "TaskAttributes is missing"},
		{"WorkerAttributes missing", callback(`{}`, "-"), "on_error", onError, "WorkerAttributes is missing"},
		{"TaskAttributes a list", callback(`[1]`, `{}`), "on_error", onError, "TaskAttributes is not a JSON object"},
		{"TaskAttributes null", callback(`null`, `{}`), "on_error", onError, "TaskAttributes is not a JSON object"},
		{"WorkerAttributes a string", callback(`{}`, `"x"`), "on_error", onError, "WorkerAttributes is not a JSON object"},
		{"WorkerAttributes broken", callback(`{}`, `{"a":`), "on_error", onError, "WorkerAttributes is not a JSON object"},
		{"TaskAge not a number", callback(`{}`, `{}`, "TaskAge", "old"), "on_error", onError, "TaskAge is not an integer"},
		{"on_error's own template fails: {}", callback(`{"case":"required-nil","error_activity":"nope"}`, `{}`), "on_error", `{}`, "on_error: with activity_sid must be a SID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(tt.params, time.Time{})
			if d.Rule != tt.rule || string(d.Response()) != tt.answer {
				t.Errorf("Decide() = %s %s; want %s %s (err %v)", d.Rule, d.Response(), tt.rule, tt.answer, d.Err)
			}
			if !json.Valid(d.Response()) {
				t.Errorf("Decide() answer is not valid JSON: %s", d.Response())
			}
			if tt.errContains == "" && d.Err != nil {
				t.Errorf("Decide().Err = %v; want nil", d.Err)
			}
			if tt.errContains != "" && (d.Err == nil || !strings.Contains(d.Err.Error(), tt.errContains)) {
				t.Errorf("Decide().Err = %v; want it to contain %q", d.Err, tt.errContains)
			}
			if d.Trace != nil {
				t.Errorf("Decide() recorded a trace; only Explain should")
			}
		})
	}
}

func TestDecideREST(t *testing.T) {
	e := newEngine(t, testkit.Rules(t, "engine"))
	tests := []struct {
		kase  string
		delay string
		want  url.Values
	}{
		{"accept-rest", "0s", url.Values{"ReservationStatus": {"accepted"}}},
		{"reject-rest", "1.5s", url.Values{"ReservationStatus": {"rejected"}, "WorkerActivitySid": {"WA00000000000000000000000000000001"}}},
		{"dequeue-rest", "0s", url.Values{
			"Instruction": {"dequeue"}, "DequeueTo": {"client:bob"}, "DequeueFrom": {"+15005550006"},
			"DequeuePostWorkActivitySid": {"WA00000000000000000000000000000002"}, "DequeueRecord": {"do-not-record"},
			"DequeueTimeout": {"15"}, "DequeueStatusCallbackUrl": {"https://example.com/s"},
			"DequeueStatusCallbackEvent": {"initiated", "ringing", "completed"},
		}},
		{"call-rest", "0s", url.Values{
			"Instruction": {"call"}, "CallFrom": {"+15005550006"}, "CallUrl": {"https://example.com/agent?task=WT00000000000000000000000000000009"},
			"CallTo": {"client:carol"}, "CallAccept": {"true"}, "CallRecord": {"record-from-answer"}, "CallTimeout": {"30"},
			"CallStatusCallbackUrl": {"https://example.com/cs"},
		}},
		{"redirect-rest", "0s", url.Values{
			"Instruction": {"redirect"}, "RedirectCallSid": {"CA00000000000000000000000000000009"},
			"RedirectUrl": {"https://example.com/r"}, "RedirectAccept": {"false"},
		}},
		{"conference-rest", "0s", url.Values{
			"Instruction": {"conference"}, "To": {"+15551230000"}, "From": {"+15005550006"},
			"PostWorkActivitySid": {"WA00000000000000000000000000000002"}, "Timeout": {"25"},
			"StatusCallback": {"https://example.com/s"}, "StatusCallbackEvent": {"answered", "completed"},
			"Record": {"true"}, "Muted": {"false"}, "Beep": {"onEnter"}, "StartConferenceOnEnter": {"true"},
			"EndConferenceOnExit": {"false"}, "EndConferenceOnCustomerExit": {"true"}, "BeepOnCustomerEntrance": {"false"},
			"WaitUrl": {"https://example.com/wait"}, "EarlyMedia": {"true"}, "MaxParticipants": {"3"},
			"ConferenceStatusCallback": {"https://example.com/c"}, "ConferenceStatusCallbackEvent": {"start", "end"},
			"ConferenceRecord": {"record-from-start"}, "RecordingStatusCallback": {"https://example.com/rec"},
		}},
	}
	for _, tt := range tests {
		d := e.Decide(callback(`{"case":"`+tt.kase+`","call_sid":"CA00000000000000000000000000000009"}`, `{"contact_uri":"client:carol"}`), time.Time{})
		if d.Rule != tt.kase || !d.REST() || string(d.Response()) != "{}" {
			t.Errorf("%s: Decide() = rule %s rest %t response %s; want rule %s via rest answering {}", tt.kase, d.Rule, d.REST(), d.Response(), tt.kase)
			continue
		}
		if got := d.Delay().String(); got != tt.delay {
			t.Errorf("%s: Delay() = %s; want %s", tt.kase, got, tt.delay)
		}
		if diff := cmp.Diff(tt.want, d.Params().Form()); diff != "" {
			t.Errorf("%s: Params().Form() (-want +got):\n%s", tt.kase, diff)
		}
		// The synchronous form of the same decision (used when the outbox cannot be written).
		var answer map[string]any
		if err := json.Unmarshal(d.Answer(), &answer); err != nil || answer["instruction"] == nil {
			t.Errorf("%s: Answer() = %s; want the instruction as JSON", tt.kase, d.Answer())
		}
	}
}

func TestExplainTrace(t *testing.T) {
	e := newEngine(t, testkit.Rules(t, "engine"))
	d := e.Explain(callback(`{"number":"x","case":"dequeue-rest","call_sid":"CA00000000000000000000000000000009"}`, `{}`), time.Time{})
	want := []engine.Step{
		{Rule: "accept-rest", Result: engine.NoMatch},
		{Rule: "reject-rest", Result: engine.NoMatch},
		{Rule: "dequeue", Result: engine.NoMatch},
		{Rule: "dequeue-rest", Result: engine.Matched},
	}
	if diff := cmp.Diff(want, d.Trace); diff != "" {
		t.Errorf("Explain().Trace (-want +got):\n%s", diff)
	}
	d = e.Explain(callback(`{"number":"x"}`, `{}`), time.Time{})
	var failed []engine.Step
	for _, s := range d.Trace {
		if s.Result == engine.Failed {
			failed = append(failed, s)
		}
	}
	if len(failed) != 1 || failed[0].Rule != "runtime-error" || failed[0].Error != `task.attributes.number is a string ("x"), compared with an int` {
		t.Errorf("Explain() failed steps = %+v; want runtime-error with its message", failed)
	}
	if len(d.RuleErrors) != 1 || d.RuleErrors[0].Rule != "runtime-error" {
		t.Errorf("Explain().RuleErrors = %+v; want the runtime-error rule", d.RuleErrors)
	}
	if d.Rule != "default" || len(d.Trace) != len(e.Set().Rules) {
		t.Errorf("Explain() = %s after %d steps; want default after trying all %d rules", d.Rule, len(d.Trace), len(e.Set().Rules))
	}
}

func TestDecideConcurrently(t *testing.T) {
	e := newEngine(t, testkit.Rules(t, "engine"))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				kase := []string{"dequeue", "call-rest", "text"}[(g+i)%3]
				d := e.Decide(callback(`{"case":"`+kase+`","ring":`+string(rune('1'+i%9))+`,"n":1,"name":"x","call_sid":"CA00000000000000000000000000000009"}`, `{"contact_uri":"client:x"}`), time.Time{})
				if d.Rule != kase {
					t.Errorf("goroutine %d: Decide() = %s; want %s (%v)", g, d.Rule, kase, d.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
