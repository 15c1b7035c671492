package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reservist/reservist/server/taskroutertest"
)

// everyInstruction has a rule for each instruction, synchronous, and two that go by REST.
const everyInstruction = `version: 1
vars:
  busy: WAfedcba9876543210fedcba9876543210
  wrap: WA0123456789abcdef0123456789abcdef
  line: "+15005550006"
rules:
  - name: accept-it
    when: task.attributes.do == "accept"
    do: accept
  - name: reject-it
    when: task.attributes.do == "reject"
    do: reject
    with:
      activity_sid: ${ vars.busy }
  - name: dequeue-it
    when: task.attributes.do == "dequeue"
    do: dequeue
    with:
      from: ${ vars.line }
      to: ${ worker.attributes.contact_uri }
      post_work_activity_sid: ${ vars.wrap }
      timeout: 20
      status_callback_events: [initiated, completed]
  - name: call-it
    when: task.attributes.do == "call"
    do: call
    with:
      from: ${ vars.line }
      url: https://example.com/twiml/agent?task=${ task.sid }
      accept: true
  - name: redirect-it
    when: task.attributes.do == "redirect"
    do: redirect
    with:
      call_sid: ${ task.attributes.call_sid }
      url: https://example.com/twiml/es
      accept: true
  - name: conference-it
    when: task.attributes.do == "conference"
    do: conference
    with:
      from: ${ vars.line }
      timeout: ${ task.attributes.ring ?? 30 }
      record: true
      beep: onEnter
      conference_status_callback_events: [start, end]
  - name: broken
    when: task.attributes.do == "broken" && task.attributes.n > 1
    do: accept
  - name: rest-accept
    when: task.attributes.do == "rest"
    do: accept
    via: rest
  - name: delayed-call
    when: task.attributes.do == "delayed"
    do: call
    delay: 10ms
    with:
      from: ${ vars.line }
      url: https://example.com/twiml/agent
default:
  do: defer
on_error:
  do: reject
  with:
    activity_sid: ${ vars.busy }
`

const (
	testWorkspace = "WS0123456789abcdef0123456789abcdef"
	testTask      = "WT0123456789abcdef0123456789abcdef"
)

// callback is a callback as TaskRouter sends it for reservation n.
func callback(n uint64, taskAttributes string) url.Values {
	return url.Values{
		"AccountSid":       {taskroutertest.DefaultAccountSid},
		"WorkspaceSid":     {testWorkspace},
		"WorkflowSid":      {"WW0123456789abcdef0123456789abcdef"},
		"TaskQueueSid":     {"WQ0123456789abcdef0123456789abcdef"},
		"TaskSid":          {testTask},
		"TaskAge":          {"3"},
		"TaskPriority":     {"0"},
		"TaskAttributes":   {taskAttributes},
		"WorkerSid":        {"WK0123456789abcdef0123456789abcdef"},
		"WorkerAttributes": {`{"contact_uri":"client:alice"}`},
		"ReservationSid":   {taskroutertest.NewSid("WR", n)},
		"Timestamp":        {"1700000000"},
	}
}

// testSign signs as TaskRouter does (reference §5), independently of the code under test.
func testSign(token, rawURL string, params url.Values) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range params {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	b.WriteString(rawURL)
	for _, k := range keys {
		b.WriteString(k + params[k][0])
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// logSink is serve's stderr in tests: it keeps every line and reports the listen addresses
// from the "listening" line.
type logSink struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	partial   []byte
	listening chan [2]string // callback, admin
	discard   atomic.Bool    // keep nothing more (benchmarks)
}

func newLogSink() *logSink { return &logSink{listening: make(chan [2]string, 1)} }

var textListening = regexp.MustCompile(`msg=listening callback=(\S+) admin=(\S+)`)

func (l *logSink) Write(p []byte) (int, error) {
	if l.discard.Load() {
		return len(p), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := l.partial[:i]
		l.partial = l.partial[i+1:]
		var rec struct{ Msg, Callback, Admin string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
			l.listening <- [2]string{rec.Callback, rec.Admin}
		} else if m := textListening.FindSubmatch(line); m != nil {
			l.listening <- [2]string{string(m[1]), string(m[2])}
		}
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// records returns the JSON log records whose msg is msg.
func (l *logSink) records(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// served is a `reservist serve` running in the test through run().
type served struct {
	url, admin string // http://127.0.0.1:PORT of each listener; admin "" when off
	rules      string // the rules file
	token      string
	log        *logSink
	cancel     context.CancelFunc
	done       chan error
}

// startServe runs `reservist serve` on free loopback ports with rules (or everyInstruction)
// written to a temporary directory, and stops it when the test ends. args and env add to
// the defaults.
func startServe(t testing.TB, rulesYAML string, env map[string]string, args ...string) *served {
	t.Helper()
	dir := t.TempDir()
	if rulesYAML == "" {
		rulesYAML = everyInstruction
	}
	s := &served{rules: filepath.Join(dir, "rules.yaml"), token: env["TWILIO_AUTH_TOKEN"], log: newLogSink(), done: make(chan error, 1)}
	if err := os.WriteFile(s.rules, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"serve", "--rules", s.rules, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--state-dir", filepath.Join(dir, "state"), "--reload-poll", "0"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- run(ctx, all, func(k string) string { return env[k] }, io.Discard, s.log) }()
	select {
	case addrs := <-s.log.listening:
		s.url = "http://" + addrs[0]
		if addrs[1] != "off" {
			s.admin = "http://" + addrs[1]
		}
	case err := <-s.done:
		t.Fatalf("serve exited at start: %v\n%s", err, s.log)
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not start listening:\n%s", s.log)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels run's context and returns what run returned.
func (s *served) stop(t testing.TB) error {
	t.Helper()
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop:\n%s", s.log)
		return nil
	}
}

// post sends a signed form callback (unsigned without a token).
func (s *served) post(t testing.TB, path string, params url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+path, strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s.token != "" {
		req.Header.Set("X-Twilio-Signature", testSign(s.token, s.url+path, params))
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q; want application/json", req.Method, req.URL.Path, ct)
	}
	return resp.StatusCode, string(b)
}

func get(t testing.TB, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// credentials are the fake TaskRouter's, and sign the callbacks too.
func credentials(fake *taskroutertest.Server) map[string]string {
	return map[string]string{"TWILIO_ACCOUNT_SID": fake.AccountSid, "TWILIO_AUTH_TOKEN": fake.AuthToken}
}

func TestServeEveryInstruction(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	s := startServe(t, "", credentials(fake), "--twilio-base-url", fake.URL)

	tests := []struct {
		attrs, want string
	}{
		{`{"do":"accept"}`, `{"instruction":"accept"}`},
		{`{"do":"reject"}`, `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`},
		{`{"do":"dequeue"}`, `{"instruction":"dequeue","to":"client:alice","from":"+15005550006","post_work_activity_sid":"WA0123456789abcdef0123456789abcdef","timeout":20,"status_callback_events":"initiated,completed"}`},
		{`{"do":"call"}`, `{"instruction":"call","from":"+15005550006","url":"https://example.com/twiml/agent?task=WT0123456789abcdef0123456789abcdef","accept":true}`},
		{`{"do":"redirect","call_sid":"CA0123456789abcdef0123456789abcdef"}`, `{"instruction":"redirect","call_sid":"CA0123456789abcdef0123456789abcdef","url":"https://example.com/twiml/es","accept":true}`},
		{`{"do":"conference","ring":15}`, `{"instruction":"conference","from":"+15005550006","timeout":15,"record":true,"beep":"onEnter","conference_status_callback_events":"start,end"}`},
		{`{"do":"nothing"}`, `{}`},
		{`{"do":"broken","n":"x"}`, `{}`}, // the failing when does not match; default defers
		{`not json`, `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`},
		{`{"do":"rest"}`, `{}`},
		{`{"do":"delayed"}`, `{}`},
	}
	for i, tt := range tests {
		status, got := s.post(t, "/assignment_callback", callback(uint64(i+1), tt.attrs))
		if status != 200 || got != tt.want {
			t.Errorf("callback with %s = %d %s; want 200 %s", tt.attrs, status, got, tt.want)
		}
	}

	// The two REST decisions reach TaskRouter with the parameters SPEC §3 names.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reqs, err := fake.WaitRequests(ctx, 2)
	if err != nil {
		t.Fatalf("fake TaskRouter got %d requests: %v\n%s", len(reqs), err, s.log)
	}
	byRes := map[string]url.Values{}
	for _, r := range reqs {
		if r.Status != 200 {
			t.Errorf("REST call %s %s answered %d", r.Method, r.Path, r.Status)
		}
		byRes[r.ReservationSid] = r.Form
	}
	if got := byRes[taskroutertest.NewSid("WR", 10)].Encode(); got != "ReservationStatus=accepted" {
		t.Errorf("via rest accept sent %s; want ReservationStatus=accepted", got)
	}
	if got := byRes[taskroutertest.NewSid("WR", 11)].Encode(); got != "CallFrom=%2B15005550006&CallUrl=https%3A%2F%2Fexample.com%2Ftwiml%2Fagent&Instruction=call" {
		t.Errorf("delayed call sent %s", got)
	}
	if len(reqs) != 2 {
		t.Errorf("fake TaskRouter got %d requests; want 2", len(reqs))
	}

	_, metrics := get(t, s.admin+"/metrics")
	for _, want := range []string{
		`reservist_callbacks_total{instruction="accept",outcome="answered",rule="accept-it"} 1`,
		`reservist_callbacks_total{instruction="accept",outcome="deferred",rule="rest-accept"} 1`,
		`reservist_callbacks_total{instruction="reject",outcome="on_error",rule="on_error"} 1`,
		`reservist_rule_evaluation_errors_total{rule="broken"} 1`,
		`reservist_callback_duration_seconds_count 11`,
		`reservist_rules_last_reload_successful 1`,
		`reservist_outbox_depth`,
		`reservist_rest_calls_total{result="ok"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// One decision log line per callback, without attributes; stopping flushes them.
	if err := s.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if recs := s.log.records("callback"); len(recs) != len(tests) {
		t.Errorf("%d decision log lines; want %d", len(recs), len(tests))
	}
	if strings.Contains(s.log.String(), "client:alice") {
		t.Errorf("attribute values reached the log")
	}
}

func TestServeExampleRules(t *testing.T) {
	// The README's first steps: the example rules, unsigned on loopback, a bare curl.
	s := startServe(t, mustRead(t, "testdata/example/rules.yaml"), nil)
	status, got := s.post(t, "/assignment_callback", url.Values{"TaskAttributes": {"{}"}, "WorkerAttributes": {"{}"}})
	if status != 200 || got != "{}" {
		t.Errorf("bare callback = %d %s; want 200 {}", status, got)
	}
	status, got = s.post(t, "/assignment_callback", callback(1, `{"channel":"chat"}`))
	if status != 200 || got != `{"instruction":"accept"}` {
		t.Errorf("chat callback = %d %s; want 200 accept", status, got)
	}
	if recs := s.log.records("TWILIO_AUTH_TOKEN is not set: accepting unsigned callbacks, which is allowed only because --listen is a loopback address"); len(recs) != 1 {
		t.Errorf("no warning about unsigned callbacks:\n%s", s.log)
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServeSignatureAndBadInput(t *testing.T) {
	s := startServe(t, "", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": "callbacktoken"},
		"--twilio-base-url", "http://127.0.0.1:1") // nothing listens there: REST calls would fail, none are made
	u := s.url + "/assignment_callback"
	params := callback(1, `{"do":"accept"}`)
	good := testSign(s.token, u, params)
	tampered := callback(1, `{"do":"accept","vip":true}`)
	type request struct {
		method, contentType, body, sig string
	}
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name   string
		req    request
		status int
		want   string // exact body for 200s
	}{
		{"signed", request{"POST", form, params.Encode(), good}, 200, `{"instruction":"accept"}`},
		{"tampered parameter", request{"POST", form, tampered.Encode(), good}, 403, ""},
		{"no signature", request{"POST", form, params.Encode(), ""}, 403, ""},
		{"PUT", request{"PUT", form, params.Encode(), good}, 405, ""},
		{"over 1 MiB", request{"POST", form, "TaskAttributes=" + strings.Repeat("x", 1<<20), good}, 413, ""},
		{"not a form", request{"POST", "application/json", `{"TaskAttributes":"{}"}`, good}, 400, ""},
		{"does not parse", request{"POST", form, "TaskAttributes=%zz", good}, 400, ""},
		{"attributes missing", request{"POST", form, "ReservationSid=WR1", testSign(s.token, u, url.Values{"ReservationSid": {"WR1"}})}, 200,
			`{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.req.method, u, strings.NewReader(tt.req.body))
		req.Header.Set("Content-Type", tt.req.contentType)
		if tt.req.sig != "" {
			req.Header.Set("X-Twilio-Signature", tt.req.sig)
		}
		status, got := do(t, req)
		if status != tt.status || (tt.want != "" && got != tt.want) {
			t.Errorf("%s: %d %s; want %d %s", tt.name, status, got, tt.status, tt.want)
		}
		if status != 200 && !strings.HasPrefix(got, `{"error":`) {
			t.Errorf("%s: body %s; want a JSON error", tt.name, got)
		}
	}
	if recs := s.log.records("callback signature check failed"); len(recs) != 2 || recs[0]["url"] != u {
		t.Errorf("signature failures logged as %v; want 2 naming %s", recs, u)
	}
	if strings.Contains(s.log.String(), "callbacktoken") {
		t.Errorf("the auth token reached the log")
	}
}

func TestServeGETAndTwoPaths(t *testing.T) {
	s := startServe(t, "", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": "tok"},
		"--callback-path", "/assignment_callback", "--callback-path", "/taskrouter/assignment_callback")
	params := callback(1, `{"do":"accept"}`)
	for _, path := range []string{"/assignment_callback", "/taskrouter/assignment_callback"} {
		if status, got := s.post(t, path, params); status != 200 || got != `{"instruction":"accept"}` {
			t.Errorf("POST %s = %d %s; want 200 accept", path, status, got)
		}
		u := s.url + path + "?" + params.Encode()
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("X-Twilio-Signature", testSign(s.token, u, nil))
		if status, got := do(t, req); status != 200 || got != `{"instruction":"accept"}` {
			t.Errorf("GET %s = %d %s; want 200 accept", path, status, got)
		}
	}
	if status, _ := s.post(t, "/assignment.php", params); status != 404 {
		t.Errorf("POST /assignment.php = %d; want 404", status)
	}
}

func TestServeHealthReadyAdmin(t *testing.T) {
	s := startServe(t, "", nil)
	if status, got := get(t, s.url+"/healthz"); status != 200 || got != `{"status":"ok"}`+"\n" {
		t.Errorf("/healthz = %d %s", status, got)
	}
	if status, got := get(t, s.url+"/readyz"); status != 200 || got != `{"status":"ok","rules":"ok"}`+"\n" {
		t.Errorf("/readyz = %d %s", status, got)
	}
	s.post(t, "/assignment_callback", callback(1, `{"do":"accept"}`))
	status, got := get(t, s.admin+"/rules")
	if status != 200 || !strings.Contains(got, `{"name":"accept-it","matches":1}`) || !strings.Contains(got, `"path":"`+s.rules+`"`) {
		t.Errorf("/rules = %d %s", status, got)
	}

	// A bad file is refused on reload, with every error; the old rules keep serving and
	// /readyz says stale.
	if err := os.WriteFile(s.rules, []byte("version: 1\nrules:\n  - name: x\n    when: 1\n    do: accept\n  - name: x\n    when: true\n    do: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", s.admin+"/-/reload", nil)
	status, got = do(t, req)
	if status != 400 || strings.Count(got, s.rules+":") < 2 {
		t.Errorf("POST /-/reload of a bad file = %d %s; want 400 with every error", status, got)
	}
	if status, got := get(t, s.url+"/readyz"); status != 200 || got != `{"status":"ok","rules":"stale"}`+"\n" {
		t.Errorf("/readyz after a failed reload = %d %s; want 200 stale", status, got)
	}
	if status, got := s.post(t, "/assignment_callback", callback(2, `{"do":"accept"}`)); status != 200 || got != `{"instruction":"accept"}` {
		t.Errorf("callback after a failed reload = %d %s; want the old rules' answer", status, got)
	}

}

// SIGHUP reloads the rules. The file is reached through a symlink into another directory,
// which the watcher does not see, so that only the signal can have reloaded it.
func TestServeSIGHUP(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real.yaml")
	link := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(real, []byte(everyInstruction), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "", nil, "--rules", link)
	if _, got := s.post(t, "/assignment_callback", callback(1, `{"do":"accept"}`)); got != `{"instruction":"accept"}` {
		t.Fatalf("before SIGHUP: %s", got)
	}
	changed := strings.Replace(everyInstruction, "do: accept\n  - name: reject-it", "do: reject\n    with:\n      activity_sid: ${ vars.busy }\n  - name: reject-it", 1)
	if err := os.WriteFile(real, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.log.records("rules reloaded")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the rules:\n%s", s.log)
		}
		time.Sleep(time.Millisecond)
	}
	if rec := s.log.records("rules reloaded")[0]; rec["reason"] != "SIGHUP" {
		t.Errorf("reloaded for %v; want SIGHUP", rec["reason"])
	}
	if _, got := s.post(t, "/assignment_callback", callback(2, `{"do":"accept"}`)); got != `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}` {
		t.Errorf("after SIGHUP: %s; want the new rules' reject", got)
	}
}

func TestServeAdminOff(t *testing.T) {
	s := startServe(t, "", nil, "--admin-listen", "off")
	if s.admin != "" {
		t.Errorf("admin listens on %s; want off", s.admin)
	}
}

func TestServeTextLogs(t *testing.T) {
	s := startServe(t, "", nil, "--log-format", "text")
	s.post(t, "/assignment_callback", callback(1, `{"do":"accept"}`))
	if err := s.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if !strings.Contains(s.log.String(), "msg=callback reservation_sid="+taskroutertest.NewSid("WR", 1)) {
		t.Errorf("text log lacks the decision line:\n%s", s.log)
	}
}

// The decision log is buffered; stopping flushes it.
func TestServeFlushesLogOnShutdown(t *testing.T) {
	s := startServe(t, "", nil)
	for i := range 5 {
		s.post(t, "/assignment_callback", callback(uint64(i+1), `{"do":"accept"}`))
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("serve returned %v; want nil", err)
	}
	if n := len(s.log.records("callback")); n != 5 {
		t.Errorf("%d decision lines after shutdown; want 5", n)
	}
	if len(s.log.records("stopped")) != 1 {
		t.Errorf("no stopped line:\n%s", s.log)
	}
}

// A callback whose body is still arriving when the server is told to stop gets its answer.
func TestServeShutdownFinishesHalfSentRequest(t *testing.T) {
	s := startServe(t, "", nil)
	addr := strings.TrimPrefix(s.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := callback(1, `{"do":"accept"}`).Encode()
	half := len(body) / 2
	// Expect: 100-continue makes the server say when the handler starts reading the body,
	// so the test knows the request is in flight before it cancels.
	head := "POST /assignment_callback HTTP/1.1\r\nHost: " + addr + "\r\n" +
		"Content-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\nExpect: 100-continue\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("read %q, %v; want 100 Continue", line, err)
	}
	for {
		if l, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		} else if l == "\r\n" {
			break
		}
	}
	if _, err := io.WriteString(conn, body[:half]); err != nil {
		t.Fatal(err)
	}

	s.cancel()
	// Wait until the listener is closed: shutdown has begun.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener never closed")
		}
		time.Sleep(time.Millisecond)
	}

	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(got) != `{"instruction":"accept"}` {
		t.Errorf("half-sent callback = %d %s; want 200 accept", resp.StatusCode, got)
	}
	if err := s.stop(t); err != nil {
		t.Errorf("serve returned %v; want nil", err)
	}
}

// exitOf runs `reservist serve` with args and env and returns the exit code and stderr. It
// is for runs that end by themselves: configuration errors.
func exitOf(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), func(k string) string { return env[k] }, io.Discard, &syncWriter{w: &stderr})
	}()
	select {
	case err := <-done:
		var out bytes.Buffer
		code := exitCode(err, &out)
		return code, stderr.String() + out.String()
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatalf("serve %q did not exit by itself:\n%s", args, stderr.String())
		return 0, ""
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestServeExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "rules.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(everyInstruction), 0o644)
	os.WriteFile(bad, []byte("version: 1\nrules:\n  - name: x\n    when: 1\n    do: accept\n  - name: y\n    when: true\n    do: nope\n"), 0o644)
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	base := []string{"--rules", good, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--state-dir", filepath.Join(dir, "state")}
	creds := map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": "tok"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		says string
	}{
		{"unknown flag", nil, []string{"--nope"}, 2, "flag provided but not defined"},
		{"argument", nil, []string{"extra"}, 2, "serve takes no arguments"},
		{"bad duration", nil, []string{"--response-budget", "soon"}, 2, "response-budget"},
		{"bad env", map[string]string{"RESERVIST_REST_CONCURRENCY": "many"}, nil, 2, "RESERVIST_REST_CONCURRENCY"},
		{"zero concurrency", nil, []string{"--rest-concurrency", "0"}, 2, "--rest-concurrency"},
		{"bad log format", nil, []string{"--log-format", "xml"}, 2, "--log-format"},
		{"bad public url", nil, []string{"--public-url", "reservist.example.com"}, 2, "--public-url"},
		{"public url with a path", nil, []string{"--public-url", "https://x.example.com/cb"}, 2, "--public-url"},
		{"callback path without /", nil, []string{"--callback-path", "cb"}, 2, "--callback-path"},
		{"callback path /healthz", nil, []string{"--callback-path", "/healthz"}, 2, "--callback-path"},
		{"bad listen", nil, []string{"--listen", "nowhere"}, 2, "--listen"},
		{"account SID alone", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid}, nil, 2, "TWILIO_AUTH_TOKEN"},
		{"token alone", map[string]string{"TWILIO_AUTH_TOKEN": "tok"}, nil, 2, "TWILIO_ACCOUNT_SID"},
		{"API key without secret", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": "tok", "TWILIO_API_KEY": "SK1"}, nil, 2, "TWILIO_API_SECRET"},
		{"API secret without key", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_API_SECRET": "s"}, nil, 2, "TWILIO_API_KEY"},
		{"malformed account SID", map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "tok"}, nil, 2, "account SID"},
		{"no token on a public listener", nil, []string{"--listen", "0.0.0.0:0"}, 2, "TWILIO_AUTH_TOKEN"},
		{"no token on all interfaces", nil, []string{"--listen", ":0"}, 2, "TWILIO_AUTH_TOKEN"},
		{"invalid rules", nil, []string{"--rules", bad}, 1, bad + ":"},
		{"missing rules", nil, []string{"--rules", filepath.Join(dir, "none.yaml")}, 1, "none.yaml"},
		{"cannot listen", creds, []string{"--listen", busy.Addr().String()}, 3, "cannot listen"},
		{"admin cannot listen", creds, []string{"--admin-listen", busy.Addr().String()}, 3, "cannot listen"},
		{"state dir unusable", creds, []string{"--state-dir", filepath.Join(notDir, "state")}, 3, "state dir"},
		{"help", nil, []string{"-h"}, 0, "RESERVIST_CALLBACK_PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := exitOf(t, tt.env, append(slices.Clone(base), tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.says) {
				t.Errorf("serve %q = exit %d, stderr:\n%s\nwant exit %d saying %q", tt.args, code, stderr, tt.code, tt.says)
			}
		})
	}
	// Every error of a bad rules file is printed, one FILE:LINE:COL line each.
	_, stderr := exitOf(t, nil, append(slices.Clone(base), "--rules", bad)...)
	if n := strings.Count(stderr, bad+":"); n < 2 {
		t.Errorf("bad rules printed %d error lines; want every error:\n%s", n, stderr)
	}
}

// Without TWILIO_AUTH_TOKEN, --insecure-skip-signature is the only way onto a non-loopback
// address, and it is said loudly.
func TestServeInsecureSkipSignature(t *testing.T) {
	s := startServe(t, "", nil, "--listen", "0.0.0.0:0", "--insecure-skip-signature")
	port := s.url[strings.LastIndex(s.url, ":")+1:]
	s.url = "http://127.0.0.1:" + port
	if status, got := s.post(t, "/assignment_callback", callback(1, `{"do":"accept"}`)); status != 200 || got != `{"instruction":"accept"}` {
		t.Errorf("unsigned callback = %d %s; want 200 accept", status, got)
	}
	if !strings.Contains(s.log.String(), "never run like this in production") {
		t.Errorf("no warning about --insecure-skip-signature:\n%s", s.log)
	}
}

func TestServeConfigPrecedence(t *testing.T) {
	env := map[string]string{
		"RESERVIST_RULES":                   "env.yaml",
		"RESERVIST_LISTEN":                  "127.0.0.1:7000",
		"RESERVIST_CALLBACK_PATH":           "/a, /b,",
		"RESERVIST_ADMIN_LISTEN":            "off",
		"RESERVIST_PUBLIC_URL":              "https://env.example.com/",
		"RESERVIST_STATE_DIR":               "/var/lib/reservist",
		"RESERVIST_RESERVATION_TIMEOUT":     "60s",
		"RESERVIST_RESPONSE_BUDGET":         "2s",
		"RESERVIST_REST_CONCURRENCY":        "3",
		"RESERVIST_TWILIO_BASE_URL":         "http://proxy.example.com",
		"RESERVIST_RELOAD_POLL":             "0",
		"RESERVIST_RELOAD_CASES":            "cases,more",
		"RESERVIST_INSECURE_SKIP_SIGNATURE": "true",
		"RESERVIST_LOG_FORMAT":              "text",
	}
	getenv := func(k string) string { return env[k] }
	c, err := parseServeConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatalf("parseServeConfig(env only) = %v", err)
	}
	if c.rules != "env.yaml" || c.listen != "127.0.0.1:7000" || !slices.Equal(c.callbackPaths, []string{"/a", "/b"}) ||
		c.adminListen != "" || c.publicURL.String() != "https://env.example.com" || c.stateDir != "/var/lib/reservist" ||
		c.reservationTimeout != time.Minute || c.responseBudget != 2*time.Second || c.restConcurrency != 3 ||
		c.twilioBaseURL != "http://proxy.example.com" || c.reloadPoll != 0 || !slices.Equal(c.reloadCases, []string{"cases", "more"}) ||
		!c.insecureSkipSignature || c.logFormat != "text" {
		t.Errorf("config from the environment = %+v", c)
	}

	c, err = parseServeConfig([]string{
		"--rules", "flag.yaml", "--callback-path", "/c", "--admin-listen", "127.0.0.1:9999",
		"--response-budget", "1s", "--insecure-skip-signature=false", "--log-format", "json",
	}, getenv, io.Discard)
	if err != nil {
		t.Fatalf("parseServeConfig(flags and env) = %v", err)
	}
	if c.rules != "flag.yaml" || !slices.Equal(c.callbackPaths, []string{"/c"}) || c.adminListen != "127.0.0.1:9999" ||
		c.responseBudget != time.Second || c.insecureSkipSignature || c.logFormat != "json" || c.listen != "127.0.0.1:7000" {
		t.Errorf("flags did not win over the environment: %+v", c)
	}

	c, err = parseServeConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("parseServeConfig(defaults) = %v", err)
	}
	if c.rules != "rules.yaml" || c.listen != "127.0.0.1:8080" || !slices.Equal(c.callbackPaths, []string{"/assignment_callback"}) ||
		c.adminListen != "127.0.0.1:9090" || c.publicURL != nil || c.stateDir != ".reservist" || c.reservationTimeout != 120*time.Second ||
		c.responseBudget != 3*time.Second || c.restConcurrency != 8 || c.twilioBaseURL != "https://taskrouter.twilio.com" ||
		c.reloadPoll != 30*time.Second || c.insecureSkipSignature || c.logFormat != "json" {
		t.Errorf("defaults = %+v", c)
	}
}

// Flags win over the environment in a running server too: the env's paths are not served.
func TestServeFlagBeatsEnvPaths(t *testing.T) {
	s := startServe(t, "", map[string]string{"RESERVIST_CALLBACK_PATH": "/a,/b"}, "--callback-path", "/c")
	if status, _ := s.post(t, "/c", callback(1, `{"do":"accept"}`)); status != 200 {
		t.Errorf("POST /c = %d; want 200", status)
	}
	if status, _ := s.post(t, "/a", callback(2, `{"do":"accept"}`)); status != 404 {
		t.Errorf("POST /a = %d; want 404: the flag replaces the environment's list", status)
	}
}

// --reload-cases keeps rules that fail their golden cases from serving, at start and on
// reload.
func TestServeReloadCases(t *testing.T) {
	cases, err := filepath.Abs("testdata/example/cases")
	if err != nil {
		t.Fatal(err)
	}
	example := mustRead(t, "testdata/example/rules.yaml")
	broken := strings.Replace(example, `when: task.attributes.channel in ["chat", "sms"]`, `when: task.attributes.channel in ["sms"]`, 1)
	if broken == example {
		t.Fatal("the example rules changed; update this test's edit")
	}

	s := startServe(t, example, nil, "--reload-cases", cases)
	if err := os.WriteFile(s.rules, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", s.admin+"/-/reload", nil)
	if status, got := do(t, req); status != 400 || !strings.Contains(got, "chat") {
		t.Errorf("POST /-/reload of rules failing their cases = %d %s; want 400 naming the failing case", status, got)
	}
	if _, got := s.post(t, "/assignment_callback", callback(1, `{"channel":"chat"}`)); got != `{"instruction":"accept"}` {
		t.Errorf("after a refused reload, chat = %s; want the old rules' accept", got)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "rules.yaml")
	os.WriteFile(bad, []byte(broken), 0o644)
	code, stderr := exitOf(t, nil, "--rules", bad, "--reload-cases", cases, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--state-dir", filepath.Join(dir, "state"))
	if code != 1 || !strings.Contains(stderr, "--reload-cases") {
		t.Errorf("serve with rules failing their cases = exit %d:\n%s\nwant exit 1 naming --reload-cases", code, stderr)
	}
}

// serve gives the garbage collector its headroom: once a collection has run, GOGC as
// /metrics reports it is above the default (the live heap of a test process is far below
// the 8 MiB headroom).
func TestServeGCHeadroom(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set in the environment, which turns the headroom off")
	}
	s := startServe(t, "", nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		runtime.GC() // the headroom is set after each collection
		_, metrics := get(t, s.admin+"/metrics")
		i := strings.Index(metrics, "\ngo_gc_gogc_percent ")
		if i < 0 {
			t.Fatal("/metrics has no go_gc_gogc_percent")
		}
		line, _, _ := strings.Cut(metrics[i+1:], "\n")
		percent, err := strconv.Atoi(strings.TrimPrefix(line, "go_gc_gogc_percent "))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if percent > 100 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("go_gc_gogc_percent is still %d while serving; want the headroom's, above 100", percent)
		}
	}
}
