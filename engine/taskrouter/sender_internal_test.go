package taskrouter

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/rules"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 30 ", 30 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// Every REST parameter of the instruction table decodes into twilio-go's update parameters
// with the Go type the table gives it, so that no decided parameter can be refused or lost
// on its way to TaskRouter.
func TestUpdateParamsCoverInstructions(t *testing.T) {
	for _, in := range rules.Instructions {
		p := outbox.Params{}
		for _, kv := range in.Fixed {
			p[kv[0]] = kv[1]
		}
		for _, f := range in.Fields {
			switch f.Kind {
			case rules.Int:
				p[f.REST] = f.Min
			case rules.Bool:
				p[f.REST] = true
			case rules.List:
				p[f.REST] = f.Enum[:1]
			default:
				p[f.REST] = "x"
			}
		}
		up, err := updateParams(p)
		if err != nil {
			t.Errorf("%s: %v", in.Name, err)
			continue
		}
		got := map[string]any{}
		b, _ := json.Marshal(up)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		for name := range p {
			if _, ok := got[name]; !ok {
				t.Errorf("%s: parameter %s did not reach twilio-go", in.Name, name)
			}
		}
	}
}
