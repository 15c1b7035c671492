package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

func TestServeEveryInstruction(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	s := startServe(t, "", credentials(fake), "--twilio-base-url", fake.URL)

	tests := []struct {
		attrs, want string
	}{
		{`{"do":"accept"}`, `{"instruction":"accept"}`},
		{`{"do":"reject"}`, `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`},
		{`{"do":"dequeue","call_sid":"CA0123456789abcdef0123456789abcdef"}`, `{"instruction":"dequeue","to":"client:alice","from":"+15005550006","post_work_activity_sid":"WA0123456789abcdef0123456789abcdef","timeout":20,"status_callback_events":"initiated,completed"}`},
		{`{"do":"call"}`, `{"instruction":"call","from":"+15005550006","url":"https://example.com/twiml/agent?task=` + testkit.Sid("WT", 4) + `","accept":true}`},
		{`{"do":"redirect","call_sid":"CA0123456789abcdef0123456789abcdef"}`, `{"instruction":"redirect","call_sid":"CA0123456789abcdef0123456789abcdef","url":"https://example.com/twiml/es","accept":true}`},
		{`{"do":"conference","ring":15,"call_sid":"CA0123456789abcdef0123456789abcdef"}`, `{"instruction":"conference","from":"+15005550006","timeout":15,"record":true,"beep":"onEnter","conference_status_callback_event":"start,end"}`},
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

	// The two REST decisions reach TaskRouter with the parameters docs/rules.md names.
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
		`reservist_rest_calls_total{result="ok",status_class="2xx"}`,
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
	s := startServe(t, testkit.Read(t, "testdata/example/rules.yaml"), nil)
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

func TestServeSignatureAndBadInput(t *testing.T) {
	s := startServe(t, "", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": "callbacktoken"},
		"--twilio-base-url", "http://127.0.0.1:1") // nothing listens there: REST calls would fail, none are made
	u := s.url + "/assignment_callback"
	params := callback(1, `{"do":"accept"}`)
	good := testkit.Sign(s.token, u, params)
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
		{"attributes missing", request{"POST", form, "ReservationSid=WR1", testkit.Sign(s.token, u, url.Values{"ReservationSid": {"WR1"}})}, 200,
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
		req.Header.Set("X-Twilio-Signature", testkit.Sign(s.token, u, nil))
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
	if err := os.WriteFile(real, []byte(testkit.Rules(t, "every-instruction")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "", nil, "--rules", link)
	if _, got := s.post(t, "/assignment_callback", callback(1, `{"do":"accept"}`)); got != `{"instruction":"accept"}` {
		t.Fatalf("before SIGHUP: %s", got)
	}
	changed := strings.Replace(testkit.Rules(t, "every-instruction"), "do: accept\n  - name: reject-it", "do: reject\n    with:\n      activity_sid: ${ vars.busy }\n  - name: reject-it", 1)
	if err := os.WriteFile(real, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	s.hup <- syscall.SIGHUP
	eventually(t, "the rules to be reloaded", func() bool { return s.revision(t) == revisionOf(changed) })
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

func TestServeExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "rules.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(testkit.Rules(t, "every-instruction")), 0o644)
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
		{"unknown flag", nil, []string{"--nope"}, 2, "reservist serve: unknown flag --nope; run 'reservist serve -h'\n"},
		{"argument", nil, []string{"extra"}, 2, `reservist serve: unexpected argument "extra": serve takes flags only`},
		{"bad duration", nil, []string{"--response-budget", "soon"}, 2, `reservist serve: --response-budget "soon": not a duration; give a number with a unit, like 30s, 2m or 1h30m; run 'reservist serve -h'` + "\n"},
		{"bad env", map[string]string{"RESERVIST_REST_CONCURRENCY": "many"}, nil, 2, "RESERVIST_REST_CONCURRENCY"},
		{"zero concurrency", nil, []string{"--rest-concurrency", "0"}, 2, "--rest-concurrency"},
		{"bad log format", nil, []string{"--log-format", "xml"}, 2, "--log-format"},
		{"bad public url", nil, []string{"--public-url", "reservist.example.com"}, 2, "--public-url"},
		{"public url with a path", nil, []string{"--public-url", "https://x.example.com/cb"}, 2, "--public-url"},
		{"callback path without /", nil, []string{"--callback-path", "cb"}, 2, "--callback-path"},
		{"callback path /healthz", nil, []string{"--callback-path", "/healthz"}, 2, "--callback-path"},
		{"bad listen", nil, []string{"--listen", "nowhere"}, 2, "--listen"},
		{"account SID alone", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid}, nil, 2, "TWILIO_AUTH_TOKEN"},
		{"token with a dash", map[string]string{"TWILIO_AUTH_TOKEN": "t-o-k"}, nil, 2, "TWILIO_AUTH_TOKEN may hold only letters and digits"},
		{"API key without secret", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": "tok", "TWILIO_API_KEY": "SK1"}, nil, 2, "TWILIO_API_SECRET"},
		{"API secret without key", map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_API_SECRET": "s"}, nil, 2, "TWILIO_API_KEY"},
		{"malformed account SID", map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "tok"}, nil, 2, "TWILIO_ACCOUNT_SID must be AC"},
		{"no token on a public listener", nil, []string{"--listen", "0.0.0.0:0"}, 2, "TWILIO_AUTH_TOKEN"},
		{"no token on all interfaces", nil, []string{"--listen", ":0"}, 2, "TWILIO_AUTH_TOKEN"},
		{"invalid rules", nil, []string{"--rules", bad}, 1, bad + ":"},
		{"missing rules", nil, []string{"--rules", filepath.Join(dir, "none.yaml")}, 1, "none.yaml"},
		{"cannot listen", creds, []string{"--listen", busy.Addr().String()}, 3, "cannot listen"},
		{"admin cannot listen", creds, []string{"--admin-listen", busy.Addr().String()}, 3, "cannot listen"},
		{"state dir unusable", creds, []string{"--state-dir", filepath.Join(notDir, "state")}, 3, "state dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := exitOf(t, tt.env, append(slices.Clone(base), tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.says) {
				t.Errorf("serve %q = exit %d, stderr:\n%s\nwant exit %d saying %q", tt.args, code, stderr, tt.code, tt.says)
			}
		})
	}
	// -h prints the flags, each with its variable, to stdout, and exits 0.
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-h"}, func(string) string { return "" }, &stdout, &stderr); err != nil || stderr.Len() > 0 ||
		!strings.Contains(stdout.String(), "(env RESERVIST_CALLBACK_PATH)") {
		t.Errorf("serve -h = %v, stdout:\n%s\nstderr:\n%s\nwant the flags on stdout", err, stdout.String(), stderr.String())
	}
	// Every error of a bad rules file is printed, one FILE:LINE:COL line each.
	_, printed := exitOf(t, nil, append(slices.Clone(base), "--rules", bad)...)
	if n := strings.Count(printed, bad+":"); n < 2 {
		t.Errorf("bad rules printed %d error lines; want every error:\n%s", n, printed)
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
	example := testkit.Read(t, "testdata/example/rules.yaml")
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
