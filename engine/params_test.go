package engine

import (
	"net/url"
	"testing"
	"time"

	"github.com/reservist/reservist/rules"
)

// The engine builds the `params` map only for rule sets that read it; the ones that do
// still see every parameter.
func TestParamsMapOnlyWhenRead(t *testing.T) {
	const head = "version: 1\nrules:\n  - name: r\n"
	tests := []struct {
		name, rules string
		reads       bool
	}{
		{"no params", head + "    when: task.attributes.channel == \"chat\"\n    do: accept\n", false},
		{"when", head + "    when: params.Custom == \"x\"\n    do: accept\n", true},
		{"when, indexed", head + "    when: params.Custom == \"x\" && task.priority > 0\n    do: accept\n", true},
		{"$env", head + "    when: $env.params.Custom == \"x\"\n    do: accept\n", true},
		{"$env index", head + "    when: $env[\"params\"][\"Custom\"] == \"x\"\n    do: accept\n", true},
		{"template", head + "    when: true\n    do: redirect\n    with:\n      call_sid: CA0123456789abcdef0123456789abcdef\n      url: https://example.com/${ params.Custom }\n", true},
		{"on_error template", head + "    when: true\n    do: accept\non_error:\n  do: redirect\n  with:\n    call_sid: CA0123456789abcdef0123456789abcdef\n    url: https://example.com/${ params.Custom }\n", true},
	}
	params := url.Values{"Custom": {"x"}, "TaskAttributes": {`{}`}, "WorkerAttributes": {`{}`}, "TaskPriority": {"1"}}
	for _, tt := range tests {
		set, err := rules.Parse("rules.yaml", []byte(tt.rules))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		e := New(set)
		if e.params != tt.reads {
			t.Errorf("%s: reads params = %v; want %v", tt.name, e.params, tt.reads)
		}
		if tt.reads {
			if d := e.Decide(params, time.Time{}); d.Rule != "r" || len(d.RuleErrors) > 0 || d.Err != nil {
				t.Errorf("%s: Decide = %s (%v, %v); want r", tt.name, d.Rule, d.RuleErrors, d.Err)
			}
		}
	}
}
