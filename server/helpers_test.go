package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/server/reload"
)

const testToken = "test-auth-token-not-a-sid"

// testRules cover the server's paths: synchronous answers, REST with and without delay, a
// `when` that fails at run time, and on_error.
const testRules = `version: 1
vars:
  busy: WAfedcba9876543210fedcba9876543210
  line: "+15005550006"
rules:
  - name: broken
    when: task.attributes.kind == "broken" && task.attributes.n > 3
    do: accept
  - name: rest-accept
    when: task.attributes.kind == "rest"
    do: accept
    via: rest
  - name: delayed-call
    when: task.attributes.kind == "delayed"
    do: call
    delay: 2s
    with:
      from: ${ vars.line }
      url: https://example.com/twiml
  - name: chat
    when: task.attributes.channel == "chat"
    do: accept
  - name: ring
    when: task.attributes.kind == "ring"
    do: dequeue
    with:
      timeout: ${ task.attributes.ring }
      to: ${ task.attributes.to }
default:
  do: defer
on_error:
  do: reject
  with:
    activity_sid: ${ vars.busy }
`

// sign is Twilio's signature algorithm (reference §5), written apart from the code under
// test: HMAC-SHA1 over the URL and the sorted POST parameters, base64.
func sign(token, rawURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(rawURL)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params[k][0])
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// callbackParams is a callback as TaskRouter sends it, with the given task attributes.
func callbackParams(taskAttributes string) url.Values {
	return url.Values{
		"AccountSid":       {"AC0123456789abcdef0123456789abcdef"},
		"WorkspaceSid":     {"WS0123456789abcdef0123456789abcdef"},
		"WorkflowSid":      {"WW0123456789abcdef0123456789abcdef"},
		"TaskQueueSid":     {"WQ0123456789abcdef0123456789abcdef"},
		"TaskSid":          {"WT0123456789abcdef0123456789abcdef"},
		"TaskAge":          {"12"},
		"TaskPriority":     {"1"},
		"TaskAttributes":   {taskAttributes},
		"WorkerSid":        {"WK0123456789abcdef0123456789abcdef"},
		"WorkerAttributes": {`{"contact_uri":"client:alice","secret_note":"do-not-log-me"}`},
		"ReservationSid":   {"WR0123456789abcdef0123456789abcdef"},
		"Timestamp":        {"1700000000"},
	}
}

// fakeOutbox records what it is given; err makes Put fail.
type fakeOutbox struct {
	mu           sync.Mutex
	actions      []Action
	seen         map[string]bool
	err          error
	unauthorized bool
	put          chan Action // receives every action stored, if not nil
}

func (f *fakeOutbox) Put(a Action) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	if f.seen[a.ReservationSid] {
		return false, nil
	}
	f.seen[a.ReservationSid] = true
	f.actions = append(f.actions, a)
	if f.put != nil {
		f.put <- a
	}
	return true, nil
}

func (f *fakeOutbox) Unauthorized() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unauthorized
}

func (f *fakeOutbox) Actions() []Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.actions)
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the JSON log records whose msg is msg.
func (l *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// harness is a callback server on loopback TCP with real rules and a fake outbox.
type harness struct {
	handler   http.Handler
	srv       *httptest.Server
	rules     *reload.Reloader
	rulesFile string
	outbox    *fakeOutbox
	log       *logBuffer
	registry  *prometheus.Registry
	metrics   *Metrics
	token     string
}

func newHarness(t testing.TB, configure ...func(*Options)) *harness {
	t.Helper()
	h := &harness{outbox: &fakeOutbox{}, log: &logBuffer{}, registry: prometheus.NewRegistry(), token: testToken}
	h.rulesFile = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(h.rulesFile, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(h.log, nil))
	rl, err := reload.New(h.rulesFile, reload.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h.rules = rl
	h.metrics = NewMetrics(h.registry)
	o := Options{
		Rules:              rl,
		Outbox:             h.outbox,
		CallbackPaths:      []string{"/assignment_callback", "/taskrouter/assignment_callback"},
		AuthToken:          testToken,
		ResponseBudget:     3 * time.Second,
		ReservationTimeout: 120 * time.Second,
		Logger:             logger,
		Metrics:            h.metrics,
	}
	for _, f := range configure {
		f(&o)
	}
	h.token = o.AuthToken
	h.handler = New(o)
	h.srv = httptest.NewServer(h.handler)
	t.Cleanup(h.srv.Close)
	return h
}

// post sends a form callback, signed for the URL it is sent to.
func (h *harness) post(t *testing.T, path string, params url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(SignatureHeader, sign(h.token, h.srv.URL+path, params))
	return h.do(t, req)
}

func (h *harness) do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// body reads a response's body.
func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantJSON checks a response's status, content type and exact body.
func wantJSON(t *testing.T, resp *http.Response, status int, want string) {
	t.Helper()
	got := body(t, resp)
	if resp.StatusCode != status || got != want {
		t.Errorf("%s %s = %d %s; want %d %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, got, status, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q; want application/json", resp.Request.Method, resp.Request.URL.Path, ct)
	}
}

// wantError checks a JSON error answer.
func wantError(t *testing.T, resp *http.Response, status int) map[string]any {
	t.Helper()
	got := body(t, resp)
	var e map[string]any
	if err := json.Unmarshal([]byte(got), &e); err != nil || e["error"] == nil || resp.StatusCode != status {
		t.Errorf("%s %s = %d %s; want %d with a JSON error", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, got, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q; want application/json", resp.Request.Method, resp.Request.URL.Path, ct)
	}
	return e
}

var errStore = errors.New("disk full")

func (f *fakeOutbox) set(fn func(f *fakeOutbox)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// newRecorder serves one request without a network.
func newRecorder(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// eventually polls cond until it holds or ten seconds pass: for what a handler does after
// its answer has been read.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
