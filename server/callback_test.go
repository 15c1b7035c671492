package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/testkit"
)

func TestCallbackAnswers(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name  string
		attrs string
		want  string
		rule  string
	}{
		{"rule", `{"channel":"chat"}`, `{"instruction":"accept"}`, "chat"},
		{"default", `{"channel":"voice"}`, `{}`, "default"},
		{"attributes not an object", `[1,2]`, `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`, "on_error"},
		{"attributes not JSON", `{"channel":`, `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`, "on_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post(t, "/assignment_callback", callbackParams(tt.attrs))
			wantJSON(t, resp, 200, tt.want)
		})
	}
	missing := callbackParams("{}")
	missing.Del("WorkerAttributes")
	wantJSON(t, h.post(t, "/assignment_callback", missing), 200, `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`)

	cur := h.rules.Current()
	for rule, want := range map[string]uint64{"chat": 1, "default": 1, "on_error": 3} {
		if got := cur.Matches(rule); got != want {
			t.Errorf("Matches(%q) = %d; want %d", rule, got, want)
		}
	}
	if got := testutil.ToFloat64(h.metrics.callbacks.WithLabelValues("on_error", "reject", OutcomeOnError)); got != 3 {
		t.Errorf("callbacks{on_error, reject, on_error} = %v; want 3", got)
	}
	if got := testutil.ToFloat64(h.metrics.callbacks.WithLabelValues("default", "defer", OutcomeDeferred)); got != 1 {
		t.Errorf("callbacks{default, defer, deferred} = %v; want 1", got)
	}
	// The log names the reservation of the callback on_error answered, and never the
	// attributes.
	if recs := h.log.lines(t, "callback cannot be decided; on_error answers"); len(recs) != 3 || recs[0]["reservation_sid"] != testkit.Sid("WR", 1) {
		t.Errorf("on_error log lines = %v; want 3 naming the reservation", recs)
	}
	if strings.Contains(h.log.String(), "do-not-log-me") || strings.Contains(h.log.String(), "client:alice") {
		t.Errorf("attribute values reached the log:\n%s", h.log.String())
	}
}

func TestCallbackBothPathsAndGET(t *testing.T) {
	h := newHarness(t)
	params := callbackParams(`{"channel":"chat"}`)
	for _, path := range []string{"/assignment_callback", "/taskrouter/assignment_callback"} {
		wantJSON(t, h.post(t, path, params), 200, `{"instruction":"accept"}`)

		// A GET carries the parameters in the query string, which the signature covers.
		u := h.srv.URL + path + "?" + params.Encode()
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set(SignatureHeader, testkit.Sign(h.token, u, nil))
		wantJSON(t, h.do(t, req), 200, `{"instruction":"accept"}`)
	}
	wantError(t, h.post(t, "/assignment.php", params), 404)
}

func TestCallbackSignature(t *testing.T) {
	h := newHarness(t)
	params := callbackParams(`{"channel":"chat"}`)
	u := h.srv.URL + "/assignment_callback"
	send := func(sig string, p url.Values, header http.Header) *http.Response {
		req, _ := http.NewRequest("POST", u, strings.NewReader(p.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, vs := range header {
			req.Header[k] = vs
		}
		if sig != "" {
			req.Header.Set(SignatureHeader, sig)
		}
		return h.do(t, req)
	}
	good := testkit.Sign(h.token, u, params)
	wantJSON(t, send(good, params, nil), 200, `{"instruction":"accept"}`)

	tampered := with(params, "TaskAttributes", `{"channel":"chat","vip":true}`)
	wantError(t, send(good, tampered, nil), 403)
	wantError(t, send("", params, nil), 403)
	wantError(t, send(testkit.Sign("another-token", u, params), params, nil), 403)
	// The POST's query string belongs to the signed URL.
	wantError(t, send(testkit.Sign(h.token, u+"?x=1", params), params, nil), 403)
	// Forwarded headers are not trusted: signing for the forwarded URL does not help.
	fwd := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"reservist.example.com"}}
	wantError(t, send(testkit.Sign(h.token, "https://reservist.example.com/assignment_callback", params), params, fwd), 403)

	if got := h.rules.Current().Matches("chat"); got != 1 {
		t.Errorf("chat matched %d callbacks; want 1: refused callbacks must not be decided", got)
	}
	if got := testutil.ToFloat64(h.metrics.callbacks.WithLabelValues("", "", OutcomeForbidden)); got != 5 {
		t.Errorf("callbacks{forbidden} = %v; want 5", got)
	}
	recs := h.log.lines(t, "callback signature check failed")
	if len(recs) != 5 {
		t.Fatalf("%d signature log lines; want 5:\n%s", len(recs), h.log.String())
	}
	if recs[0]["url"] != u {
		t.Errorf("log names url %v; want %s", recs[0]["url"], u)
	}
	if hint, _ := recs[4]["hint"].(string); !strings.Contains(hint, "--public-url") {
		t.Errorf("forwarded request's log line has hint %q; want one about --public-url", hint)
	}
	if strings.Contains(h.log.String(), h.token) {
		t.Errorf("the auth token reached the log")
	}
}

func TestCallbackPublicURL(t *testing.T) {
	public, _ := url.Parse("https://reservist.example.com")
	h := newHarness(t, func(o *Options) { o.PublicURL = public })
	params := callbackParams(`{"channel":"chat"}`)
	send := func(signedFor string) *http.Response {
		req, _ := http.NewRequest("POST", h.srv.URL+"/assignment_callback?x=1", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(SignatureHeader, testkit.Sign(h.token, signedFor, params))
		return h.do(t, req)
	}
	wantJSON(t, send("https://reservist.example.com/assignment_callback?x=1"), 200, `{"instruction":"accept"}`)
	wantJSON(t, send("https://reservist.example.com:443/assignment_callback?x=1"), 200, `{"instruction":"accept"}`)
	wantError(t, send(h.srv.URL+"/assignment_callback?x=1"), 403)

	recs := h.log.lines(t, "callback signature check failed")
	if len(recs) != 1 {
		t.Fatalf("%d signature log lines; want 1", len(recs))
	}
	if recs[0]["url"] != "https://reservist.example.com/assignment_callback?x=1" {
		t.Errorf("log names url %v; want the --public-url one", recs[0]["url"])
	}
	if recs[0]["request_url"] != h.srv.URL+"/assignment_callback?x=1" || recs[0]["hint"] == nil {
		t.Errorf("log line %v; want request_url %s and a hint that scheme or host differ", recs[0], h.srv.URL)
	}
}

func TestCallbackUnsigned(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.AuthToken = "" })
	req, _ := http.NewRequest("POST", h.srv.URL+"/assignment_callback", strings.NewReader(callbackParams(`{"channel":"chat"}`).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantJSON(t, h.do(t, req), 200, `{"instruction":"accept"}`)
}

// Each row of the bad-input table (docs/http.md), and the order the checks go in: method, size,
// form, signature.
func TestCallbackBadInput(t *testing.T) {
	h := newHarness(t)
	u := h.srv.URL + "/assignment_callback"
	good := callbackParams(`{"channel":"chat"}`).Encode()
	big := strings.Repeat("a", MaxBody+1)
	exact := "TaskAttributes=" + strings.Repeat("a", MaxBody-len("TaskAttributes="))

	type request struct {
		method, contentType, body string
		chunked, signed           bool
	}
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"PUT", request{method: "PUT", contentType: "application/x-www-form-urlencoded", body: good}, 405},
		{"DELETE", request{method: "DELETE"}, 405},
		{"PATCH over 1 MiB: the method goes first", request{method: "PATCH", body: big}, 405},
		{"over 1 MiB", request{method: "POST", contentType: "application/x-www-form-urlencoded", body: big, signed: true}, 413},
		{"over 1 MiB, chunked", request{method: "POST", contentType: "application/x-www-form-urlencoded", body: big, chunked: true, signed: true}, 413},
		{"over 1 MiB and not a form: size goes first", request{method: "POST", contentType: "text/plain", body: big}, 413},
		{"exactly 1 MiB is fine", request{method: "POST", contentType: "application/x-www-form-urlencoded", body: exact, signed: true}, 200},
		{"no content type", request{method: "POST", body: good, signed: true}, 400},
		{"JSON", request{method: "POST", contentType: "application/json", body: `{"TaskAttributes":"{}"}`, signed: true}, 400},
		{"multipart", request{method: "POST", contentType: "multipart/form-data; boundary=x", body: "--x--", signed: true}, 400},
		{"form with charset", request{method: "POST", contentType: "application/x-www-form-urlencoded; charset=utf-8", body: good, signed: true}, 200},
		{"bad escape", request{method: "POST", contentType: "application/x-www-form-urlencoded", body: "TaskAttributes=%zz"}, 400},
		{"semicolon", request{method: "POST", contentType: "application/x-www-form-urlencoded", body: "a=1;b=2"}, 400},
		{"not a form, unsigned: the form goes before the signature", request{method: "POST", contentType: "text/plain", body: good}, 400},
		{"unsigned", request{method: "POST", contentType: "application/x-www-form-urlencoded", body: good}, 403},
		{"empty form", request{method: "POST", contentType: "application/x-www-form-urlencoded", body: "", signed: true}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(tt.req.body)
			if tt.req.chunked {
				r = io.MultiReader(r) // hides the length: sent chunked
			}
			req, _ := http.NewRequest(tt.req.method, u, r)
			if tt.req.contentType != "" {
				req.Header.Set("Content-Type", tt.req.contentType)
			}
			if tt.req.signed {
				params, _ := url.ParseQuery(tt.req.body)
				req.Header.Set(SignatureHeader, testkit.Sign(h.token, u, params))
			}
			resp := h.do(t, req)
			if tt.status == 200 {
				if resp.StatusCode != 200 {
					t.Errorf("%s = %d %s; want 200", tt.name, resp.StatusCode, body(t, resp))
				}
				return
			}
			wantError(t, resp, tt.status)
			if tt.status == 405 && resp.Header.Get("Allow") != "GET, POST" {
				t.Errorf("405 Allow = %q; want GET, POST", resp.Header.Get("Allow"))
			}
		})
	}

	// A GET whose query string does not parse.
	req, _ := http.NewRequest("GET", u+"?TaskAttributes=%zz", nil)
	wantError(t, h.do(t, req), 400)
	// HEAD gets no body, but still 405.
	req, _ = http.NewRequest("HEAD", u, nil)
	if resp := h.do(t, req); resp.StatusCode != 405 {
		t.Errorf("HEAD = %d; want 405", resp.StatusCode)
	}
	if got := testutil.ToFloat64(h.metrics.callbacks.WithLabelValues("", "", OutcomeBadRequest)); got < 10 {
		t.Errorf("callbacks{bad_request} = %v; want every refused request counted", got)
	}
}

// The body reaches the engine whole however it is sent: with a Content-Length, chunked, or
// longer than what is read in one piece; a body that ends before its Content-Length is a bad
// form.
func TestCallbackBodies(t *testing.T) {
	h := newHarness(t)
	u := h.srv.URL + "/assignment_callback"
	good := callbackParams(`{"channel":"chat"}`)
	large := callbackParams(`{"channel":"chat"}`)
	large.Set("Padding", strings.Repeat("x", 200<<10)) // over what is allocated up front
	for _, tt := range []struct {
		name    string
		params  url.Values
		chunked bool
	}{
		{"with length", good, false},
		{"chunked", good, true},
		{"with length, 200 KiB", large, false},
		{"chunked, 200 KiB", large, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(tt.params.Encode())
			if tt.chunked {
				r = io.MultiReader(r) // hides the length: sent chunked
			}
			req, _ := http.NewRequest("POST", u, r)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set(SignatureHeader, testkit.Sign(h.token, u, tt.params))
			wantJSON(t, h.do(t, req), 200, `{"instruction":"accept"}`)
		})
	}

	t.Run("shorter than its length", func(t *testing.T) {
		conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := good.Encode()
		fmt.Fprintf(conn, "POST /assignment_callback HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
			h.srv.Listener.Addr(), len(body)+10, body)
		conn.(*net.TCPConn).CloseWrite() // the client stops sending; it still reads the answer
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, resp, 400)
	})
}

func TestCallbackErrorsDoNotLeak(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("POST", h.srv.URL+"/assignment_callback", strings.NewReader("a=%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	got := body(t, h.do(t, req))
	if got != `{"error":"the body does not parse as a form"}`+"\n" {
		t.Errorf("bad form answer = %q; want only the public message", got)
	}
}

func TestCallbackRuleErrors(t *testing.T) {
	h := newHarness(t)
	resp := h.post(t, "/assignment_callback", callbackParams(`{"kind":"broken","n":"not a number","channel":"chat"}`))
	// The failing `when` does not match; evaluation goes on to the next rule.
	wantJSON(t, resp, 200, `{"instruction":"accept"}`)
	if got := testutil.ToFloat64(h.metrics.ruleErrors.WithLabelValues("broken")); got != 1 {
		t.Errorf("rule_evaluation_errors{broken} = %v; want 1", got)
	}
	recs := h.log.lines(t, "rule condition failed; the rule did not match")
	if len(recs) != 1 || recs[0]["rule"] != "broken" || recs[0]["reservation_sid"] != testkit.Sid("WR", 1) {
		t.Errorf("rule error log = %v; want one line naming rule and reservation", recs)
	}
	if strings.Contains(h.log.String(), "not a number") {
		t.Errorf("an attribute value reached the log:\n%s", h.log.String())
	}
}

// A `with` template that fails sends the callback to on_error; the log says why without the
// attribute values the error quotes.
func TestCallbackTemplateErrorsAreRedacted(t *testing.T) {
	h := newHarness(t)
	for _, attrs := range []string{`{"kind":"ring","ring":98765}`, `{"kind":"ring","ring":"private-value"}`, `{"kind":"ring","ring":20,"to":7770777}`} {
		resp := h.post(t, "/assignment_callback", callbackParams(attrs))
		wantJSON(t, resp, 200, `{"instruction":"reject","activity_sid":"WAfedcba9876543210fedcba9876543210"}`)
	}
	recs := h.log.lines(t, "callback cannot be decided; on_error answers")
	if len(recs) != 3 {
		t.Fatalf("%d on_error log lines; want 3:\n%s", len(recs), h.log)
	}
	for _, rec := range recs {
		if msg, _ := rec["error"].(string); !strings.Contains(msg, "ring") || !strings.Contains(msg, "timeout") && !strings.Contains(msg, "to") {
			t.Errorf("on_error log error %q does not say which rule and field", msg)
		}
	}
	for _, rec := range recs {
		for _, secret := range []string{"98765", "private-value", "7770777"} {
			if msg, _ := rec["error"].(string); strings.Contains(msg, secret) {
				t.Errorf("attribute value %q reached the log: %s", secret, msg)
			}
		}
	}
	if strings.Contains(h.log.String(), "private-value") {
		t.Errorf("attribute value reached the log:\n%s", h.log)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{`ring: with timeout: timeout must be a number from 1 to 999, not 98765`, `ring: with timeout: timeout must be a number from 1 to 999, not …`},
		{`ring: with to: to must be a string, not the number 1.5e3`, `ring: with to: to must be a string, not the number …`},
		{`with record: record must be one of "a", "b", not "my \"secret\""`, `with record: record must be one of "…", "…", not "…"`},
		{"invalid operation: > (mismatched types string and int)\n | task.attributes.n > 3\n | ^", "invalid operation: > (mismatched types string and int)"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestCallbackDecisionLog(t *testing.T) {
	h := newHarness(t)
	h.post(t, "/assignment_callback", callbackParams(`{"channel":"chat","ssn":"123-45-6789"}`))
	recs := h.log.lines(t, "callback")
	if len(recs) != 1 {
		t.Fatalf("%d decision log lines; want 1", len(recs))
	}
	rec := recs[0]
	want := map[string]any{
		"reservation_sid": testkit.Sid("WR", 1),
		"task_sid":        testkit.Sid("WT", 1),
		"worker_sid":      testkit.WorkerSid,
		"rule":            "chat",
		"instruction":     "accept",
		"via":             "response",
		"revision":        h.rules.Current().Revision(),
		"outcome":         "answered",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("decision log %s = %v; want %v", k, rec[k], v)
		}
	}
	if _, ok := rec["latency_us"].(float64); !ok {
		t.Errorf("decision log latency_us = %v; want a number", rec["latency_us"])
	}
	if strings.Contains(h.log.String(), "123-45-6789") {
		t.Errorf("attributes reached the log")
	}
}

func TestCallbackREST(t *testing.T) {
	h := newHarness(t)
	// The reservation was made 30 seconds before the callback arrives: its times count
	// from the callback's Timestamp.
	created := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	rest := callbackParams(`{"kind":"rest"}`)
	rest.Set("Timestamp", strconv.FormatInt(created.Unix(), 10))
	wantJSON(t, h.post(t, "/assignment_callback", rest), 200, `{}`)

	// Without a Timestamp, and with one ahead of the arrival, they count from the arrival.
	before := time.Now()
	delayed := callbackParams(`{"kind":"delayed"}`)
	delayed.Set("ReservationSid", "WR00000000000000000000000000000002")
	delayed.Del("Timestamp")
	wantJSON(t, h.post(t, "/assignment_callback", delayed), 200, `{}`)
	ahead := callbackParams(`{"kind":"rest"}`)
	ahead.Set("ReservationSid", "WR00000000000000000000000000000003")
	ahead.Set("Timestamp", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	wantJSON(t, h.post(t, "/assignment_callback", ahead), 200, `{}`)
	after := time.Now()

	acts := h.outbox.Actions()
	if len(acts) != 3 {
		t.Fatalf("outbox got %d actions; want 3", len(acts))
	}
	a := acts[0]
	if a.ReservationSid != testkit.Sid("WR", 1) || a.TaskSid != testkit.Sid("WT", 1) ||
		a.WorkspaceSid != testkit.WorkspaceSid || a.WorkerSid != testkit.WorkerSid || a.Rule != "rest-accept" {
		t.Errorf("action = %+v; want the callback's SIDs and rule rest-accept", a)
	}
	if got := a.Params.Form().Encode(); got != "ReservationStatus=accepted" {
		t.Errorf("action params = %s; want ReservationStatus=accepted", got)
	}
	if !a.Received.Equal(created) || !a.Due.Equal(created) || !a.Deadline.Equal(created.Add(120*time.Second)) {
		t.Errorf("action times received %v due %v deadline %v; want received at the Timestamp %v, due then, deadline 120s later", a.Received, a.Due, a.Deadline, created)
	}
	d := acts[1]
	if d.Received.Before(before) || d.Received.After(after) || !d.Due.Equal(d.Received.Add(2*time.Second)) || d.Params["Instruction"] != "call" || d.Params["CallFrom"] != "+15005550006" {
		t.Errorf("delayed action = %+v; want received during the call, due 2s later, a call from +15005550006", d)
	}
	if f := acts[2]; f.Received.Before(before) || f.Received.After(after) {
		t.Errorf("action with a Timestamp an hour ahead received %v; want during the call", f.Received)
	}

	// A second callback for the same reservation queues nothing, and is still answered {}.
	wantJSON(t, h.post(t, "/assignment_callback", callbackParams(`{"kind":"rest"}`)), 200, `{}`)
	if n := len(h.outbox.Actions()); n != 3 {
		t.Errorf("outbox has %d actions after a duplicate callback; want 3", n)
	}
	if recs := h.log.lines(t, "callback"); len(recs) != 4 || recs[3]["duplicate"] != true || recs[3]["via"] != "rest" {
		t.Errorf("duplicate callback's log line = %v; want duplicate=true via=rest", recs[len(recs)-1])
	}
	if got := testutil.ToFloat64(h.metrics.callbacks.WithLabelValues("rest-accept", "accept", OutcomeDeferred)); got != 3 {
		t.Errorf("callbacks{rest-accept, accept, deferred} = %v; want 3", got)
	}
}

func TestCallbackOutboxFails(t *testing.T) {
	h := newHarness(t)
	h.outbox.set(func(f *fakeOutbox) { f.err = errStore })

	// Without a delay the instruction is better answered now than lost.
	wantJSON(t, h.post(t, "/assignment_callback", callbackParams(`{"kind":"rest"}`)), 200, `{"instruction":"accept"}`)
	// With one, 503 sends TaskRouter to the fallback URL.
	e := wantError(t, h.post(t, "/assignment_callback", callbackParams(`{"kind":"delayed"}`)), 503)
	if strings.Contains(e["error"].(string), "disk full") {
		t.Errorf("503 body %v leaks the internal error", e)
	}
	if got := testutil.ToFloat64(h.metrics.callbacks.WithLabelValues("delayed-call", "call", OutcomeUnavailable)); got != 1 {
		t.Errorf("callbacks{delayed-call, call, unavailable} = %v; want 1", got)
	}
	if len(h.log.lines(t, "outbox refused the decision; answering it synchronously instead")) != 1 ||
		len(h.log.lines(t, "outbox refused a delayed decision; answered 503")) != 1 {
		t.Errorf("outbox failures not logged:\n%s", h.log.String())
	}
}

// A REST decision for a callback that does not name its reservation cannot be stored; like
// an outbox failure, it is answered synchronously, or with 503 when it has a delay.
func TestCallbackRESTNeedsSids(t *testing.T) {
	h := newHarness(t)
	p := callbackParams(`{"kind":"rest"}`)
	p.Del("ReservationSid")
	wantJSON(t, h.post(t, "/assignment_callback", p), 200, `{"instruction":"accept"}`)
	p = callbackParams(`{"kind":"delayed"}`)
	p.Del("TaskSid")
	wantError(t, h.post(t, "/assignment_callback", p), 503)
	if n := len(h.outbox.Actions()); n != 0 {
		t.Errorf("outbox got %d actions for callbacks without their SIDs", n)
	}
}

// A decision that misses the response budget is answered {} at the budget, and handed to
// the outbox when it is ready.
func TestCallbackResponseBudget(t *testing.T) {
	release := make(chan struct{})
	h := newHarness(t, func(o *Options) {
		o.ResponseBudget = time.Millisecond
		o.beforeDecide = func() { <-release } // the engine is "slow" until the client has its answer
	})
	put := make(chan outbox.Action, 1)
	h.outbox.set(func(f *fakeOutbox) { f.put = put })

	resp := h.post(t, "/assignment_callback", callbackParams(`{"channel":"chat"}`))
	// The handler is still held: this answer can only have come from the budget.
	wantJSON(t, resp, 200, `{}`)
	close(release)

	select {
	case a := <-put:
		if a.Rule != "chat" || a.Params.Form().Encode() != "ReservationStatus=accepted" || !a.Due.Equal(a.Received) {
			t.Errorf("late decision's action = %+v; want chat's accept, due at once", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late decision never reached the outbox")
	}
	eventually(t, "the late callback to be counted", func() bool {
		return testutil.ToFloat64(h.metrics.callbacks.WithLabelValues("chat", "accept", OutcomeDeferred)) == 1
	})
	if recs := h.log.lines(t, "callback"); len(recs) != 1 || recs[0]["via"] != "rest" || recs[0]["rule"] != "chat" {
		t.Errorf("late decision's log line = %v; want rule chat via rest", recs)
	}

	// A defer that misses the budget has nothing to send.
	h.outbox.set(func(f *fakeOutbox) { f.put = nil })
	resp = h.post(t, "/assignment_callback", with(callbackParams(`{}`), "ReservationSid", "WR00000000000000000000000000000009"))
	wantJSON(t, resp, 200, `{}`)
	eventually(t, "the late defer to be logged", func() bool { return len(h.log.lines(t, "callback")) == 2 })
	if n := len(h.outbox.Actions()); n != 1 {
		t.Errorf("outbox has %d actions; a late defer must add none", n)
	}
}

// Budget timers that did not fire are used again: a late callback after many quick ones
// still gets its {} from the budget, and quick ones after it get their decisions.
func TestCallbackResponseBudgetReused(t *testing.T) {
	var slow atomic.Bool
	release := make(chan struct{})
	h := newHarness(t, func(o *Options) {
		o.ResponseBudget = time.Second // far beyond a quick decision, even under -race
		o.beforeDecide = func() {
			if slow.Load() {
				<-release
			}
		}
	})
	chat := callbackParams(`{"channel":"chat"}`)
	for i := 0; i < 20; i++ {
		wantJSON(t, h.post(t, "/assignment_callback", with(chat, "ReservationSid", fmt.Sprintf("WR%032x", i))), 200, `{"instruction":"accept"}`)
	}
	slow.Store(true)
	wantJSON(t, h.post(t, "/assignment_callback", with(chat, "ReservationSid", fmt.Sprintf("WR%032x", 100))), 200, `{}`)
	slow.Store(false)
	close(release)
	for i := 0; i < 5; i++ {
		wantJSON(t, h.post(t, "/assignment_callback", with(chat, "ReservationSid", fmt.Sprintf("WR%032x", 200+i))), 200, `{"instruction":"accept"}`)
	}
}

func TestCallbackPanicIsContained(t *testing.T) {
	var panics atomic.Bool
	panics.Store(true)
	h := newHarness(t, func(o *Options) {
		o.beforeDecide = func() {
			if panics.Load() {
				panic("boom")
			}
		}
	})
	wantError(t, h.post(t, "/assignment_callback", callbackParams(`{}`)), 500)
	panics.Store(false)
	wantJSON(t, h.post(t, "/assignment_callback", callbackParams(`{"channel":"chat"}`)), 200, `{"instruction":"accept"}`)
	if len(h.log.lines(t, "panic in handler")) != 1 {
		t.Errorf("panic not logged")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		return h.do(t, req)
	}
	wantJSON(t, get("/healthz"), 200, `{"status":"ok"}`+"\n")
	wantJSON(t, get("/readyz"), 200, `{"status":"ok","rules":"ok"}`+"\n")

	h.outbox.set(func(f *fakeOutbox) { f.unauthorized = true })
	wantJSON(t, get("/readyz"), 200, `{"status":"ok","rules":"ok","twilio":"unauthorized"}`+"\n")

	if err := writeFile(h.rulesFile, "version: 2\n"); err != nil {
		t.Fatal(err)
	}
	if err := h.rules.Reload("test"); err == nil {
		t.Fatal("Reload of a bad file succeeded")
	}
	wantJSON(t, get("/readyz"), 200, `{"status":"ok","rules":"stale","twilio":"unauthorized"}`+"\n")

	noOutbox := New(Options{Rules: h.rules, CallbackPaths: []string{"/cb"}}).Callbacks()
	rec := newRecorder(noOutbox, "GET", "/readyz")
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"outbox":"not open"`) {
		t.Errorf("readyz without an outbox = %d %s; want 503 naming the outbox", rec.Code, rec.Body)
	}
}

func TestAdmin(t *testing.T) {
	h := newHarness(t)
	h.post(t, "/assignment_callback", callbackParams(`{"channel":"chat"}`))
	admin := New(Options{Rules: h.rules, Gatherer: h.registry}).Admin()

	rec := newRecorder(admin, "GET", "/rules")
	var status struct {
		Path      string    `json:"path"`
		Revision  string    `json:"revision"`
		LoadedAt  time.Time `json:"loaded_at"`
		LastError []string  `json:"last_error"`
		Rules     []struct {
			Name    string `json:"name"`
			Matches uint64 `json:"matches"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &status); err != nil || rec.Code != 200 {
		t.Fatalf("GET /rules = %d %s", rec.Code, rec.Body)
	}
	if status.Path != h.rulesFile || status.Revision != h.rules.Current().Revision() || status.LoadedAt.IsZero() || len(status.Rules) != 7 {
		t.Errorf("GET /rules = %+v; want the file, its revision, and 5 rules + default + on_error", status)
	}
	for _, r := range status.Rules {
		if want := map[bool]uint64{true: 1}[r.Name == "chat"]; r.Matches != want {
			t.Errorf("rule %s matches %d; want %d", r.Name, r.Matches, want)
		}
	}

	rec = newRecorder(admin, "GET", "/metrics")
	for _, want := range []string{
		`reservist_callbacks_total{instruction="accept",outcome="answered",rule="chat"} 1`,
		"reservist_callback_duration_seconds_count 1",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A good change reloads with its revision; a bad one is refused with every error.
	if err := writeFile(h.rulesFile, strings.Replace(testkit.Rules(t, "server"), "channel == \"chat\"", "channel == \"sms\"", 1)); err != nil {
		t.Fatal(err)
	}
	rec = newRecorder(admin, "POST", "/-/reload")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), h.rules.Current().Revision()) || h.rules.Current().Revision() == status.Revision {
		t.Errorf("POST /-/reload = %d %s; want 200 with the new revision", rec.Code, rec.Body)
	}
	if err := writeFile(h.rulesFile, "version: 1\nrules:\n  - name: Bad\n    when: true\n    do: explode\n"); err != nil {
		t.Fatal(err)
	}
	rec = newRecorder(admin, "POST", "/-/reload")
	var failed struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &failed); err != nil || rec.Code != 400 || len(failed.Errors) < 2 {
		t.Errorf("POST /-/reload of a bad file = %d %s; want 400 with every error", rec.Code, rec.Body)
	}
	for _, l := range failed.Errors {
		if !strings.HasPrefix(l, h.rulesFile+":") {
			t.Errorf("reload error %q is not FILE:LINE:COL: message", l)
		}
	}
	rec = newRecorder(admin, "GET", "/rules")
	if !strings.Contains(rec.Body.String(), `"last_error":["`) || !strings.Contains(rec.Body.String(), `"stale":true`) {
		t.Errorf("GET /rules after a failed reload = %s; want stale with last_error lines", rec.Body)
	}
	// A 405 of the router names what the path takes, in Allow and in the message.
	for _, tc := range []struct {
		h             http.Handler
		method, path  string
		allow, saying string
	}{
		{admin, "GET", "/-/reload", "POST", "/-/reload takes POST"},
		{admin, "POST", "/rules", "GET", "/rules takes GET"},
		{h.handler, "POST", "/healthz", "GET", "/healthz takes GET"},
	} {
		rec := newRecorder(tc.h, tc.method, tc.path)
		if rec.Code != 405 || rec.Header().Get("Allow") != tc.allow || !strings.Contains(rec.Body.String(), tc.saying) {
			t.Errorf("%s %s = %d Allow %q %s; want 405 Allow %q saying %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body, tc.allow, tc.saying)
		}
	}
}
