package server

import (
	"context"
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

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/internal/testkit"
)

const testToken = "test-auth-token-not-a-sid"

// callbackParams is a callback as TaskRouter sends it, with the given task attributes and
// a worker attribute that must never reach a log.
func callbackParams(taskAttributes string) url.Values {
	p := testkit.Callback(1, taskAttributes)
	p.Set("WorkerAttributes", `{"contact_uri":"client:alice","secret_note":"do-not-log-me"}`)
	return p
}

// fakeOutbox records what it is given; err makes Put fail.
type fakeOutbox struct {
	mu           sync.Mutex
	actions      []outbox.Action
	seen         map[string]bool
	err          error
	unauthorized bool
	put          chan outbox.Action // receives every action stored, if not nil
}

func (f *fakeOutbox) Put(_ context.Context, a outbox.Action) (bool, error) {
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

func (f *fakeOutbox) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (f *fakeOutbox) Stats(context.Context) (outbox.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return outbox.Stats{Depth: len(f.actions)}, nil
}

func (f *fakeOutbox) Supersede(context.Context, outbox.Supersession) (int, error) { return 0, nil }

func (f *fakeOutbox) Ready() error { return nil }

func (f *fakeOutbox) Close() error { return nil }

func (f *fakeOutbox) Actions() []outbox.Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.actions)
}

// logBuffer is testkit's, with the lookup these tests use.
type logBuffer struct{ testkit.LogBuffer }

// lines returns the JSON log records whose msg is msg.
func (l *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	return l.Records(msg)
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
	if err := os.WriteFile(h.rulesFile, []byte(testkit.Rules(t, "server")), 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(h.log, nil))
	rl, err := reload.New(h.rulesFile, reload.Options{Logger: logger, Settle: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.rules = rl
	h.metrics = NewMetrics()
	if err := h.metrics.Register(h.registry); err != nil {
		t.Fatal(err)
	}
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
	h.handler = New(o).Callbacks()
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
	req.Header.Set(SignatureHeader, testkit.Sign(h.token, h.srv.URL+path, params))
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
	req := httptest.NewRequest(method, target, nil)
	req.Host = "127.0.0.1:9090" // as an operator's curl addresses the admin listener
	h.ServeHTTP(rec, req)
	return rec
}

// eventually polls cond until it holds: for what a handler does after its answer has been
// read.
func eventually(t *testing.T, what string, cond func() bool) { testkit.Eventually(t, what, cond) }
