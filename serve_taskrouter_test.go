package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// noREST is serve's start-up warning when the rules hold REST decisions that nothing can send.
const noREST = "TWILIO_ACCOUNT_SID is not set, so the rules' REST decisions are logged as dry-run and dropped; set it with TWILIO_AUTH_TOKEN, or with TWILIO_API_KEY and TWILIO_API_SECRET, to send them"

// Whether REST calls can be sent is serve's start-up warning (check does not know the
// environment): once, naming the REST rules, and only when there are REST rules and no
// credentials.
func TestServeWarnsOfRESTWithoutCredentials(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	tests := []struct {
		name  string
		rules string // "" for the every-instruction fixture, which has two REST rules
		env   map[string]string
		want  string // the rules the warning names; "" for no warning
	}{
		{"REST rules, no credentials", "", nil, "[rest-accept delayed-call]"},
		{"REST rules, credentials", "", credentials(fake), ""},
		{"no REST rules, no credentials", "version: 1\nrules:\n  - {name: r, when: 'true', do: accept}\n", nil, ""},
		{"REST on_error", "version: 1\nrules: []\non_error:\n  do: accept\n  via: rest\n", nil, "[on_error]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServe(t, tt.rules, tt.env, "--twilio-base-url", fake.URL)
			recs := s.log.records(noREST)
			switch {
			case tt.want == "" && len(recs) > 0:
				t.Errorf("serve warned %v; want no warning about REST credentials", recs)
			case tt.want != "" && len(recs) != 1:
				t.Errorf("serve warned %d times about REST credentials; want once:\n%s", len(recs), s.log)
			case tt.want != "" && fmt.Sprint(recs[0]["rest_rules"]) != tt.want:
				t.Errorf("the warning names %v; want %s", recs[0]["rest_rules"], tt.want)
			}
		})
	}
}

// What went wrong deciding is logged with the attribute's name and type, never its value;
// a decision TaskRouter would fail is logged with the attribute it lacks and the error.
func TestServeLogsRunTimeErrorsWithoutValues(t *testing.T) {
	const rulesYAML = `version: 1
rules:
  - name: full
    when: (worker.attributes.open_chats ?? 0) >= 3
    do: reject
  - name: voice
    when: task.attributes.kind == "voice"
    do: dequeue
`
	s := startServe(t, rulesYAML, nil)
	const secret = "seven-and-a-half"
	if status, got := s.post(t, "/assignment_callback", testkit.CallbackWith(1, `{}`, `{"open_chats":"`+secret+`"}`)); status != 200 || got != "{}" {
		t.Errorf("callback with a text open_chats = %d %s; want 200 {} (default)", status, got)
	}
	if status, got := s.post(t, "/assignment_callback", testkit.CallbackWith(2, `{"kind":"voice","caller":"`+secret+`"}`, `{"contact_uri":"client:alice"}`)); status != 200 || got != "{}" {
		t.Errorf("dequeue of a task without call_sid = %d %s; want 200 {} (on_error)", status, got)
	}
	eventually(t, "both problems logged", func() bool {
		return len(s.log.records("rule condition failed; the rule did not match")) == 1 &&
			len(s.log.records("callback cannot be decided; on_error answers")) == 1
	})
	if got := s.log.records("rule condition failed; the rule did not match")[0]["error"]; got != "worker.attributes.open_chats is a string, compared with an int" {
		t.Errorf("logged rule error %q; want the attribute and its type", got)
	}
	got := fmt.Sprint(s.log.records("callback cannot be decided; on_error answers")[0]["error"])
	if !strings.Contains(got, "task.attributes.call_sid") || !strings.Contains(got, "40140") {
		t.Errorf("logged on_error cause %q; want the missing attribute and the Twilio error", got)
	}
	if strings.Contains(s.log.String(), secret) {
		t.Errorf("an attribute value reached the log:\n%s", s.log)
	}
}
