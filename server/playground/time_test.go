package playground_test

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/server"
	"github.com/reservist/reservist/server/playground"
)

// The hours suite: rules that read the time, and cases that pin it.
const (
	hoursRules = "../../testdata/hours/rules.yaml"
	hoursCases = "../../testdata/hours/cases"
)

// timeHarness serves the playground over the rules in file with the given case
// directories, and a clock that says now.
func timeHarness(t *testing.T, file string, now time.Time, dirs ...string) *harness {
	t.Helper()
	h := &harness{log: &logBuffer{}, rulesFile: file}
	logger := slog.New(slog.NewJSONHandler(h.log, nil))
	var err error
	if h.rules, err = reload.New(file, reload.Options{Logger: logger}); err != nil {
		t.Fatal(err)
	}
	pg := playground.New(playground.Options{Rules: h.rules, CaseDirs: dirs, Logger: logger, Now: func() time.Time { return now }})
	h.srv = httptest.NewServer(server.New(server.Options{Rules: h.rules, Logger: logger, Playground: pg, Gatherer: prometheus.NewRegistry()}).Admin())
	t.Cleanup(h.srv.Close)
	return h
}

// A voice call with no Timestamp, as the page's form may hold one.
const voiceParams = `"params": {"TaskSid": "WT0123456789abcdef0123456789abcdef", "TaskAttributes": {"channel": "voice", "call_sid": "CA0123456789abcdef0123456789abcdef"}, "WorkerAttributes": {"contact_uri": "client:alice"}}`

// "at" decides a callback at that time in place of its Timestamp; without it, the
// callback's Timestamp; without that, the clock, as serve would. Each decision says which.
func TestDecideAt(t *testing.T) {
	// Sunday 16:00 in London: both desks are closed.
	h := timeHarness(t, hoursRules, time.Date(2026, 3, 15, 16, 0, 0, 0, time.UTC))
	for _, tt := range []struct {
		name, body       string
		rule, at, atFrom string
	}{
		{"at, RFC 3339", `{` + voiceParams + `, "at": "2026-03-10T09:00:00-05:00"}`, "support-voice", "2026-03-10T10:00:00-04:00", "at"},
		{"at, epoch seconds as a string", `{` + voiceParams + `, "at": "1773183600"}`, "night-desk-voice", "2026-03-10T19:00:00-04:00", "at"},
		{"at, epoch seconds as a number", `{` + voiceParams + `, "at": 1773183600}`, "night-desk-voice", "2026-03-10T19:00:00-04:00", "at"},
		{"at over the Timestamp", `{"form": "TaskAttributes=%7B%22channel%22%3A%22voice%22%2C%22call_sid%22%3A%22CA0123456789abcdef0123456789abcdef%22%7D&WorkerAttributes=%7B%22contact_uri%22%3A%22client%3Aalice%22%7D&Timestamp=1773183600", "at": "2026-03-10T09:00:00-05:00"}`, "support-voice", "2026-03-10T10:00:00-04:00", "at"},
		{"the Timestamp", `{"form": "TaskAttributes=%7B%22channel%22%3A%22voice%22%2C%22call_sid%22%3A%22CA0123456789abcdef0123456789abcdef%22%7D&WorkerAttributes=%7B%22contact_uri%22%3A%22client%3Aalice%22%7D&Timestamp=1773183600"}`, "night-desk-voice", "2026-03-10T19:00:00-04:00", "timestamp"},
		{"the clock", `{` + voiceParams + `}`, "after-hours-voice", "2026-03-15T12:00:00-04:00", "arrival"},
		{"null at: the clock", `{` + voiceParams + `, "at": null}`, "after-hours-voice", "2026-03-15T12:00:00-04:00", "arrival"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, got := h.post(t, "/decide", tt.body)
			if status != 200 || got["rule"] != tt.rule || got["at"] != tt.at || got["at_from"] != tt.atFrom {
				t.Errorf("POST /decide %s = %d rule %v at %v from %v; want rule %s at %s from %s", tt.body, status, got["rule"], got["at"], got["at_from"], tt.rule, tt.at, tt.atFrom)
			}
		})
	}
	for _, tt := range []struct{ body, want string }{
		{`{` + voiceParams + `, "at": "tomorrow"}`, `at must be the time to decide at, an RFC 3339 time like 2026-03-09T09:15:00-04:00 or Unix epoch seconds: "tomorrow" is neither`},
		{`{` + voiceParams + `, "at": ""}`, "at must be the time to decide at"},
		{`{` + voiceParams + `, "at": {}}`, "at must be the time to decide at"},
	} {
		status, got := h.post(t, "/decide", tt.body)
		if msg, _ := got["error"].(string); status != 400 || !strings.Contains(msg, tt.want) {
			t.Errorf("POST /decide %s = %d %v; want 400 saying %q", tt.body, status, got, tt.want)
		}
	}
}

// A draft decides the callback at "at" beside the active rules, and the golden cases at
// their own times whatever the clock says.
func TestDraftAt(t *testing.T) {
	draft, err := os.ReadFile(hoursRules)
	if err != nil {
		t.Fatal(err)
	}
	// The draft opens support an hour later.
	changed := strings.Replace(string(draft), `mon-fri: "08:00-18:00"`, `mon-fri: "09:00-18:00"`, 1)
	for _, now := range []time.Time{time.Date(2026, 3, 15, 16, 0, 0, 0, time.UTC), time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)} {
		h := timeHarness(t, hoursRules, now, hoursCases)
		status, got := h.post(t, "/draft", mustJSON(map[string]any{
			"rules":  changed,
			"params": map[string]any{"TaskAttributes": map[string]any{"channel": "voice", "call_sid": "CA0123456789abcdef0123456789abcdef"}, "WorkerAttributes": map[string]any{"contact_uri": "client:alice"}},
			"at":     "2026-03-10T08:30:00-05:00",
		}))
		if status != 200 {
			t.Fatalf("POST /draft = %d %v", status, got)
		}
		cb := got["callback"].(map[string]any)
		active, drafted := cb["active"].(map[string]any), cb["draft"].(map[string]any)
		if active["rule"] != "support-voice" || drafted["rule"] != "after-hours-voice" || cb["changed"] != true || drafted["at_from"] != "at" {
			t.Errorf("at 08:30 in Chicago the active rules decide %v and the draft %v (changed %v); want support-voice and after-hours-voice", active["rule"], drafted["rule"], cb["changed"])
		}
		cs := got["cases"].(map[string]any)
		if cs["total"] != 21.0 || cs["changed"] != 3.0 || cs["failing"] != 3.0 {
			t.Errorf("with the clock at %v, the draft's cases: %v total, %v changed, %v failing; want 21, 3 (the cases at 08:00, 08:15 and 08:30 in Chicago), 3", now, cs["total"], cs["changed"], cs["failing"])
		}
	}

	h := timeHarness(t, hoursRules, time.Now())
	status, got := h.post(t, "/draft", mustJSON(map[string]any{"rules": string(draft), "at": "2026-03-10T08:30:00-05:00"}))
	if msg, _ := got["error"].(string); status != 400 || !strings.Contains(msg, "give the callback too") {
		t.Errorf("POST /draft with at and no callback = %d %v; want 400 asking for the callback", status, got)
	}
}

// A draft that reads the time, tried against a case that does not pin it: the case is not
// decided by the draft, and the playground says why rather than deciding it by the clock.
func TestDraftCaseWithoutTimestamp(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(plain, []byte("version: 1\nrules:\n  - {name: voice, when: 'task.attributes.channel == \"voice\"', do: accept}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	casesDir := filepath.Join(dir, "cases")
	if err := os.MkdirAll(casesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"voice.yaml":        "TaskAttributes: {channel: voice, call_sid: CA0123456789abcdef0123456789abcdef}\nWorkerAttributes: {contact_uri: client:alice}\n",
		"voice.golden.json": `{"rule": "voice", "response": {"instruction": "accept"}, "rest": null}`,
	} {
		if err := os.WriteFile(filepath.Join(casesDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	draft, err := os.ReadFile(hoursRules)
	if err != nil {
		t.Fatal(err)
	}
	h := timeHarness(t, plain, time.Now(), casesDir)
	status, got := h.post(t, "/draft", mustJSON(map[string]any{"rules": string(draft)}))
	if status != 200 {
		t.Fatalf("POST /draft = %d %v", status, got)
	}
	c := got["cases"].(map[string]any)["results"].([]any)[0].(map[string]any)
	if c["draft"] != nil || c["changed"] != true || c["golden"] != "error" ||
		!strings.Contains(c["golden_error"].(string), "the case has no Timestamp") || !strings.Contains(c["diff"].(string), "the draft does not decide this case") {
		t.Errorf("case without a Timestamp under a draft that reads the time = %v; want it undecided, changed, with why", c)
	}
}
