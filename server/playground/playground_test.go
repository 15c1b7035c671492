package playground_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/server"
	"github.com/reservist/reservist/server/playground"
)

// The repository's example suite: rules and golden cases.
const (
	exampleRules = "../../testdata/example/rules.yaml"
	exampleCases = "../../testdata/example/cases"
)

// chatOnlySMS is the edit that changes one example case: chat is no longer accepted.
const (
	chatRule    = `when: task.attributes.channel in ["chat", "sms"]`
	chatRuleSMS = `when: task.attributes.channel in ["sms"]`
)

// maxBody is the playground's bound on a request body: 1 MiB.
const maxBody = 1 << 20

// logBuffer is testkit's log buffer.
type logBuffer = testkit.LogBuffer

type harness struct {
	srv       *httptest.Server
	rules     *reload.Reloader
	rulesFile string
	recent    *playground.Recent
	log       *logBuffer
	example   string
}

// newHarness serves the playground over the example rules (copied, so that tests can break
// them) with the example cases as --reload-cases.
func newHarness(t *testing.T, configure ...func(*playground.Options)) *harness {
	t.Helper()
	data, err := os.ReadFile(exampleRules)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{log: &logBuffer{}, recent: playground.NewRecent(), example: string(data)}
	if !strings.Contains(h.example, chatRule) {
		t.Fatal("the example rules changed; update chatRule")
	}
	h.rulesFile = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(h.rulesFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(h.log, nil))
	if h.rules, err = reload.New(h.rulesFile, reload.Options{Logger: logger, Settle: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	o := playground.Options{
		Rules:    h.rules,
		Recent:   h.recent,
		CaseDirs: []string{exampleCases},
		Logger:   logger,
	}
	for _, f := range configure {
		f(&o)
	}
	// The playground as the admin listener serves it.
	srv := server.New(server.Options{Rules: h.rules, Logger: logger, Playground: playground.New(o), Gatherer: prometheus.NewRegistry()})
	h.srv = httptest.NewServer(srv.Admin())
	t.Cleanup(h.srv.Close)
	return h
}

// post sends a JSON body and decodes the JSON answer.
func (h *harness) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return h.do(t, req)
}

func (h *harness) do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q; want application/json", req.Method, req.URL.Path, ct)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s = %d %s: not a JSON object: %v", req.Method, req.URL.Path, resp.StatusCode, data, err)
	}
	return resp.StatusCode, out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// /decide gets every golden case's decision, from a form body as from params: the page
// decides with the engine that serves, not a copy of it.
func TestDecideMatchesGoldenCases(t *testing.T) {
	h := newHarness(t)
	cs, err := cases.Load(exampleCases)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) < 10 {
		t.Fatalf("only %d example cases", len(cs))
	}
	for _, c := range cs {
		want, err := cases.ReadGolden(c.Golden)
		if err != nil {
			t.Fatal(err)
		}
		params := map[string]string{}
		for k := range c.Params {
			params[k] = c.Params.Get(k)
		}
		for _, body := range []string{
			mustJSON(map[string]any{"form": c.Params.Encode()}),
			mustJSON(map[string]any{"params": params}),
		} {
			status, got := h.post(t, "/decide", body)
			if status != 200 {
				t.Errorf("%s: POST /decide = %d %v", c.Name, status, got)
				continue
			}
			g := &cases.Golden{Rule: got["rule"].(string), Response: json.RawMessage(mustJSON(got["response"]))}
			if got["rest"] != nil {
				var r cases.REST
				json.Unmarshal([]byte(mustJSON(got["rest"])), &r)
				g.REST = &r
			}
			if d, err := cases.Diff(want, g); err != nil || d != "" {
				t.Errorf("%s: /decide differs from the golden file (- want + got):\n%s%v", c.Name, d, err)
			}
			if got["response_text"] != string(want.Response) && !jsonEqual(got["response_text"].(string), string(want.Response)) {
				t.Errorf("%s: response_text %s; want %s", c.Name, got["response_text"], want.Response)
			}
			if got["revision"] != h.rules.Current().Revision() {
				t.Errorf("%s: revision %v; want the active one", c.Name, got["revision"])
			}
		}
	}
	// Trying callbacks in the playground does not count as deciding them.
	for _, m := range h.rules.Current().MatchCounts() {
		if m.Matches != 0 {
			t.Errorf("rule %s counts %d matches after /decide; want 0", m.Rule, m.Matches)
		}
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && mustJSON(x) == mustJSON(y)
}

// /decide shows the exact answer, the REST call, the trace with run-time errors (with the
// values they met: the trace is for the operator), and why on_error decided.
func TestDecideShowsTheWay(t *testing.T) {
	h := newHarness(t)
	status, got := h.post(t, "/decide", `{"params": {"TaskSid": "WT0123456789abcdef0123456789abcdef",
		"TaskAttributes": {"type": "callback"}, "WorkerAttributes": {"contact_uri": "+15551230000"}}}`)
	if status != 200 {
		t.Fatalf("POST /decide = %d %v", status, got)
	}
	if got["rule"] != "scheduled-callback" || got["via"] != "rest" || got["response_text"] != "{}" || got["instruction"] != "call" {
		t.Errorf("decision = %v; want scheduled-callback call via rest, answered {}", got)
	}
	const wantParams = `{"CallAccept":"true","CallFrom":"+15005550006","CallUrl":"https://example.com/twiml/agent-answer?task=WT0123456789abcdef0123456789abcdef","Instruction":"call"}`
	if rest, _ := got["rest"].(map[string]any); rest == nil || mustJSON(rest["params"]) != wantParams {
		t.Errorf("rest = %v; want params %s", got["rest"], wantParams)
	}

	trace := func(got map[string]any) string {
		var steps []string
		for _, s := range got["trace"].([]any) {
			s := s.(map[string]any)
			steps = append(steps, fmt.Sprintf("%s %s %v", s["rule"], s["result"], s["error"]))
		}
		return fmt.Sprint(steps)
	}
	_, got = h.post(t, "/decide", `{"params": {"TaskAttributes": {"call_sid": "CA0123456789abcdef0123456789abcdef", "last_csat": "2"},
		"WorkerAttributes": {"contact_uri": "client:alice"}}}`)
	want := `[vip-voice no <nil> escalation error task.attributes.last_csat is a string ("2"), compared with an int desk-phone no <nil> voice match <nil>]`
	if got["rule"] != "voice" || trace(got) != want {
		t.Errorf("decided %v, trace = %s; want voice after %s", got["rule"], trace(got), want)
	}

	_, got = h.post(t, "/decide", `{"params": {"TaskAttributes": {"call_sid": "CA0123456789abcdef0123456789abcdef", "vip": true}, "WorkerAttributes": {}}}`)
	want = "[vip-voice match not carried out: dequeue has no to, so TaskRouter calls worker.attributes.contact_uri, and it is missing: TaskRouter would fail the instruction with Twilio error 40131; give to under with, or the worker a contact_uri]"
	if got["rule"] != "on_error" || trace(got) != want || !strings.Contains(fmt.Sprint(got["error"]), "40131") {
		t.Errorf("a VIP call to a worker without contact_uri: decided %v (error %v), trace = %s; want on_error after %s", got["rule"], got["error"], trace(got), want)
	}

	_, got = h.post(t, "/decide", `{"form": "TaskAttributes=nope&WorkerAttributes=%7B%7D"}`)
	if got["rule"] != "on_error" || !strings.Contains(fmt.Sprint(got["error"]), "TaskAttributes") {
		t.Errorf("bad attributes decided %v; want on_error saying why", got)
	}
	if got["response_text"] != `{}` {
		t.Errorf("response_text = %v; want on_error's defer, byte for byte", got["response_text"])
	}
}

// Nothing a caller sends makes a 5xx; every refusal is a JSON error that says what is wrong.
func TestHostileInput(t *testing.T) {
	h := newHarness(t)
	huge := `{"form": "` + strings.Repeat("a", maxBody) + `"}`
	deepYAML := strings.Repeat("[", 200000)
	deepParens := "version: 1\nrules:\n  - name: deep\n    when: " + strings.Repeat("(", 450000) + "true" + strings.Repeat(")", 450000) + "\n    do: accept\n"
	manyNodes := "version: 1\nrules:\n  - name: deep\n    when: " + strings.Repeat("!", 900000) + "true\n    do: accept\n"
	for _, tc := range []struct {
		path, ctype, body string
		status            int
		want              string // in the error message
	}{
		{"/decide", "application/json", huge, 413, "1 MiB"},
		{"/draft", "application/json", `{"rules": "` + strings.Repeat("#", maxBody) + `"}`, 413, "1 MiB"},
		{"/decide", "text/plain", `{"form": ""}`, 415, "application/json"},
		{"/decide", "", `{"form": ""}`, 415, "application/json"},
		{"/decide", "application/x-www-form-urlencoded", `TaskAttributes=%7B%7D`, 415, "application/json"},
		{"/decide", "application/json", `[{"form": ""}]`, 400, "JSON object"},
		{"/decide", "application/json", `"form"`, 400, "JSON object"},
		{"/decide", "application/json", `null`, 400, "JSON object"},
		{"/decide", "application/json", `42`, 400, "JSON object"},
		{"/decide", "application/json", ``, 400, "JSON object"},
		{"/draft", "application/json", `[]`, 400, "JSON object"},
		{"/decide", "application/json", `{"form": `, 400, "not valid JSON"},
		{"/decide", "application/json", `{"form": "a" "b"}`, 400, "not valid JSON"},
		{"/decide", "application/json", `{"form": ""} {"form": ""}`, 400, "one JSON object"},
		{"/decide", "application/json", `{"form": 5}`, 400, "form must be a string"},
		{"/decide", "application/json", `{"params": "TaskSid=WT1"}`, 400, "params must be an object"},
		{"/decide", "application/json", `{"params": ["a"]}`, 400, "params must be an object"},
		{"/decide", "application/json", `{"from": "typo"}`, 400, `unknown field "from"`},
		{"/decide", "application/json", `{}`, 400, "no callback"},
		{"/decide", "application/json", `{"form": "", "params": {}}`, 400, "not both"},
		{"/decide", "application/json", `{"form": "a=%zz"}`, 400, "not a form body"},
		{"/draft", "application/json", `{}`, 400, "rules is required"},
		{"/draft", "application/json", `{"rules": 1}`, 400, "rules must be a string"},
		{"/draft", "application/json", `{"rules": "version: 1", "form": "%"}`, 400, "not a form body"},
		{"/draft", "application/json", mustJSON(map[string]string{"rules": "version: [1"}), 422, "not valid"},
		{"/draft", "application/json", mustJSON(map[string]string{"rules": "\x00\xff"}), 422, "not valid"},
		{"/draft", "application/json", mustJSON(map[string]string{"rules": ""}), 422, "not valid"},
		{"/draft", "application/json", mustJSON(map[string]string{"rules": "- a\n- b"}), 422, "not valid"},
		{"/draft", "application/json", mustJSON(map[string]string{"rules": deepYAML}), 422, "not valid"},
		{"/draft", "application/json", mustJSON(map[string]string{"rules": deepParens}), 422, "not valid"},
		{"/draft", "application/json", mustJSON(map[string]string{"rules": manyNodes}), 422, "not valid"},
	} {
		req, _ := http.NewRequest("POST", h.srv.URL+tc.path, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		status, got := h.do(t, req)
		msg, _ := got["error"].(string)
		if status != tc.status || !strings.Contains(msg, tc.want) {
			body := tc.body
			if len(body) > 60 {
				body = body[:60] + "…"
			}
			t.Errorf("POST %s %q = %d %q; want %d with an error saying %q", tc.path, body, status, msg, tc.status, tc.want)
		}
		if strings.Contains(msg, "json:") || strings.Contains(msg, "playground.") || strings.Contains(msg, "Go ") {
			t.Errorf("POST %s: error %q speaks Go, not JSON", tc.path, msg)
		}
	}

	// A body that does not say how long it is is cut at the bound all the same.
	req, _ := http.NewRequest("POST", h.srv.URL+"/decide", io.MultiReader(strings.NewReader(`{"form": "`), strings.NewReader(strings.Repeat("a", 2*maxBody))))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	if status, got := h.do(t, req); status != 413 {
		t.Errorf("chunked POST over 1 MiB = %d %v; want 413", status, got)
	}

	for _, tc := range []struct{ method, path string }{{"GET", "/decide"}, {"PUT", "/draft"}, {"DELETE", "/"}} {
		req, _ := http.NewRequest(tc.method, h.srv.URL+tc.path, nil)
		if status, _ := h.do(t, req); status != 405 {
			t.Errorf("%s %s = %d; want 405", tc.method, tc.path, status)
		}
	}
}

// A big but valid draft is tried, not refused: the bound is the body's size.
func TestDraftBig(t *testing.T) {
	h := newHarness(t, func(o *playground.Options) { o.CaseDirs = nil })
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := 0; b.Len() < maxBody*9/10; i++ { // JSON adds a byte per newline
		fmt.Fprintf(&b, "  - name: rule-%d\n    description: %s\n    when: task.attributes.n == %d && worker.attributes.skill == \"s%d\"\n    do: accept\n", i, strings.Repeat("x", 40), i, i)
	}
	status, got := h.post(t, "/draft", mustJSON(map[string]any{"rules": b.String(), "params": map[string]any{"TaskAttributes": map[string]int{"n": 3}, "WorkerAttributes": map[string]string{"skill": "s3"}}}))
	if status != 200 {
		t.Fatalf("POST /draft of %d bytes = %d %.300v", b.Len(), status, got)
	}
	cb := got["callback"].(map[string]any)
	if draft := cb["draft"].(map[string]any); draft["rule"] != "rule-3" {
		t.Errorf("big draft decided %v; want rule-3", draft["rule"])
	}
}

// A draft with errors: every one, FILE:LINE:COL, named after the file it would replace.
func TestDraftErrors(t *testing.T) {
	h := newHarness(t)
	broken := strings.Replace(h.example, "do: accept\n", "do: acept\n", 1)
	broken = strings.Replace(broken, "timeout: 20", "timeout: 2000", 1)
	status, got := h.post(t, "/draft", mustJSON(map[string]string{"rules": broken}))
	if status != 422 {
		t.Fatalf("POST /draft of a broken draft = %d %v; want 422", status, got)
	}
	errs := got["errors"].([]any)
	if len(errs) != 2 {
		t.Fatalf("errors = %v; want 2", errs)
	}
	for i, want := range []string{"rules.yaml:33:16: ", "rules.yaml:75:9: "} {
		if !strings.HasPrefix(errs[i].(string), want) {
			t.Errorf("error %d = %q; want it to start %q", i, errs[i], want)
		}
	}
	d := got["diagnostics"].([]any)[1].(map[string]any)
	if d["line"] != 75.0 || d["col"] != 9.0 || !strings.Contains(d["message"].(string), "acept") {
		t.Errorf("diagnostic = %v; want line 75, col 9, about acept", d)
	}
	if h.rules.Current().Revision() != h.rules.Status().Revision || h.rules.Status().Stale {
		t.Errorf("a draft changed what serves")
	}
}

// A valid draft: what it decides for the callback and each golden case beside the active
// rules, with the changed ones flagged and those failing their golden files counted.
func TestDraftCompares(t *testing.T) {
	h := newHarness(t)
	draft := strings.Replace(h.example, chatRule, chatRuleSMS, 1)
	before := h.rules.Current().Revision()
	status, got := h.post(t, "/draft", mustJSON(map[string]any{
		"rules": draft,
		"form":  url.Values{"TaskAttributes": {`{"channel":"chat"}`}, "WorkerAttributes": {`{}`}}.Encode(),
	}))
	if status != 200 {
		t.Fatalf("POST /draft = %d %v", status, got)
	}
	if got["active_revision"] != before || got["revision"] == before {
		t.Errorf("revisions: draft %v, active %v; want the draft's own and the active %s", got["revision"], got["active_revision"], before)
	}
	cb := got["callback"].(map[string]any)
	active, drafted := cb["active"].(map[string]any), cb["draft"].(map[string]any)
	if cb["changed"] != true || active["rule"] != "chat-and-sms" || drafted["rule"] != "default" || drafted["response_text"] != "{}" {
		t.Errorf("callback = %v; want chat-and-sms → default, changed", cb)
	}
	if !strings.Contains(cb["diff"].(string), "chat-and-sms") {
		t.Errorf("callback diff %q does not show the change", cb["diff"])
	}

	cs := got["cases"].(map[string]any)
	if cs["changed"] != 1.0 || cs["failing"] != 1.0 || cs["total"].(float64) < 10 {
		t.Errorf("cases: total %v, changed %v, failing %v; want one changed and failing", cs["total"], cs["changed"], cs["failing"])
	}
	var changed []string
	for _, r := range cs["results"].([]any) {
		r := r.(map[string]any)
		if r["changed"] == true {
			changed = append(changed, r["name"].(string))
			if r["golden"] != "fail" || r["golden_diff"] == "" || r["diff"] == "" {
				t.Errorf("changed case %v: want golden fail with diffs", r)
			}
		} else if r["golden"] != "pass" {
			t.Errorf("unchanged case %s: golden %v; want pass", r["name"], r["golden"])
		}
	}
	if fmt.Sprint(changed) != "[chat]" {
		t.Errorf("changed cases %v; want [chat]", changed)
	}
	if h.rules.Current().Revision() != before {
		t.Errorf("a draft was swapped in")
	}

	// The active rules themselves, as a draft: nothing changes.
	_, got = h.post(t, "/draft", mustJSON(map[string]any{"rules": h.example}))
	if cs := got["cases"].(map[string]any); cs["changed"] != 0.0 || cs["failing"] != 0.0 {
		t.Errorf("the active rules as a draft: %v changed, %v failing; want 0, 0", cs["changed"], cs["failing"])
	}
	if got["callback"] != nil {
		t.Errorf("callback = %v without a callback sent; want none", got["callback"])
	}
}

// Without --reload-cases there is nothing to compare but the callback; with a directory
// that cannot be read the draft is still tried and the page says why.
func TestDraftCaseDirs(t *testing.T) {
	h := newHarness(t, func(o *playground.Options) { o.CaseDirs = nil })
	_, got := h.post(t, "/draft", mustJSON(map[string]any{"rules": h.example}))
	if _, ok := got["cases"]; ok {
		t.Errorf("cases = %v without --reload-cases; want none", got["cases"])
	}
	h = newHarness(t, func(o *playground.Options) { o.CaseDirs = []string{filepath.Join(t.TempDir(), "missing")} })
	status, got := h.post(t, "/draft", mustJSON(map[string]any{"rules": h.example}))
	if cs, _ := got["cases"].(map[string]any); status != 200 || cs == nil || !strings.Contains(fmt.Sprint(cs["error"]), "cannot be read") {
		t.Errorf("POST /draft with a missing case dir = %d %v; want 200 saying the cases cannot be read", status, got)
	}
}

// Attribute values sent to the playground are never logged.
func TestNothingLogged(t *testing.T) {
	h := newHarness(t)
	secret := "+15559876543"
	cb := mustJSON(map[string]any{"params": map[string]any{"TaskAttributes": map[string]any{"from": secret, "ring_seconds": secret}, "WorkerAttributes": "{}"}})
	h.post(t, "/decide", cb)
	h.post(t, "/draft", `{"rules": "version: 1\nvars:\n  x: `+secret+`\n", "params": {"TaskAttributes": "`+secret+`"}}`)
	if strings.Contains(h.log.String(), secret) {
		t.Errorf("an attribute value reached the log:\n%s", h.log)
	}
}

// The page shows the active rules with their match counts, the reload status with its
// errors, the recent callbacks, and the rules file to start a draft from.
func TestPage(t *testing.T) {
	h := newHarness(t)
	h.rules.Current().CountMatch("voice")
	h.recent.Observe(url.Values{"ReservationSid": {"WR0000000000000000000000000000beef"}, "TaskAttributes": {`{"a":"<b>"}`}}, nil)
	page := func() (*http.Response, string) {
		t.Helper()
		resp, err := h.srv.Client().Get(h.srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := page()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for _, want := range []string{
		`<tr data-rule="voice">`, `<td class="num matches">1</td>`, `<tr data-rule="on_error">`,
		h.rules.Current().Revision()[:12], `id="reload-status" class="good">ok<`,
		`WR0000000000000000000000000000beef`, `%22%3Cb%3E%22`, // the form body, escaped for HTML
		`task.attributes.channel in [&#34;chat&#34;, &#34;sms&#34;]`, // rules as text, not HTML
		`/static/playground.js`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<b>") {
		t.Errorf("an attribute value went into the page as HTML")
	}
	if strings.Contains(body, `id="source-note"`) {
		t.Errorf("page says the file on disk is not what serves, but it is")
	}

	// A bad file on disk: the page says the rules are stale, why, and that the draft text
	// is not what serves.
	if err := os.WriteFile(h.rulesFile, []byte("version: 1\nrules:\n  - name: x\n    when: true\n    do: acept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.rules.Reload("test"); err == nil {
		t.Fatal("reload of a bad file succeeded")
	}
	_, body = page()
	for _, want := range []string{`id="reload-status" class="bad">stale<`, `rules.yaml:5:9: `, `id="source-note"`, `do: acept`} {
		if !strings.Contains(body, want) {
			t.Errorf("page with stale rules lacks %s", want)
		}
	}
}

func TestStaticAndFallThrough(t *testing.T) {
	h := newHarness(t)
	for path, want := range map[string]string{
		"/static/playground.js":  "text/javascript; charset=utf-8",
		"/static/playground.css": "text/css; charset=utf-8",
	} {
		resp, err := h.srv.Client().Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want {
			t.Errorf("GET %s = %d %s; want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
	for path, want := range map[string]int{"/metrics": 200, "/rules": 200, "/-/reload": 405, "/nope": 404} {
		resp, err := h.srv.Client().Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d; want %d from the admin routes beside the playground", path, resp.StatusCode, want)
		}
	}
}

// Requests addressed to a host name other than localhost are refused: DNS rebinding.
func TestLocalOnly(t *testing.T) {
	h := newHarness(t)
	for host, want := range map[string]int{
		"evil.example:9090": 403, "127.0.0.1.nip.io": 403,
		"127.0.0.1:9090": 200, "localhost:9090": 200, "LOCALHOST": 200, "[::1]:9090": 200, "10.1.2.3": 200, "app.localhost:9090": 200,
	} {
		req, _ := http.NewRequest("GET", h.srv.URL+"/recent", nil)
		req.Host = host
		if status, _ := h.do(t, req); status != want {
			t.Errorf("GET /recent with Host %s = %d; want %d", host, status, want)
		}
	}
	// The admin routes beside it are refused alike: every one is unauthenticated.
	req, _ := http.NewRequest("GET", h.srv.URL+"/metrics", nil)
	req.Host = "prometheus.svc"
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /metrics with Host prometheus.svc = %d; want 403", resp.StatusCode)
	}
}

// Without a Recent, /recent says why none are kept.
func TestRecentOff(t *testing.T) {
	h := newHarness(t, func(o *playground.Options) { o.Recent, o.RecentOff = nil, "not on loopback" })
	_, list := h.post(t, "/decide", `{"form": ""}`) // decided, but a playground decision is no callback received
	_ = list
	req, _ := http.NewRequest("GET", h.srv.URL+"/recent", nil)
	if _, got := h.do(t, req); got["kept"] != false || got["why"] != "not on loopback" || mustJSON(got["callbacks"]) != "[]" {
		t.Errorf("GET /recent without a Recent = %v", got)
	}
}
