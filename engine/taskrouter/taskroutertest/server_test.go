package taskroutertest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	ws = NewSid("WS", 1)
	wt = NewSid("WT", 2)
	wk = NewSid("WK", 3)
	wa = NewSid("WA", 4)
	ca = NewSid("CA", 5)
)

func taskPath(wr string) string {
	return "/v1/Workspaces/" + ws + "/Tasks/" + wt + "/Reservations/" + wr
}

func workerPath(wr string) string {
	return "/v1/Workspaces/" + ws + "/Workers/" + wk + "/Reservations/" + wr
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// do sends one request with the default credentials unless user is set.
func do(t *testing.T, s *Server, method, path string, form url.Values, user, pass string) answer {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user == "" {
		user, pass = s.AccountSid, s.AuthToken
	}
	if user != "-" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return a
}

func post(t *testing.T, s *Server, path string, form url.Values) answer {
	t.Helper()
	return do(t, s, http.MethodPost, path, form, "", "")
}

// wantError checks a Twilio-shaped error body.
func wantError(t *testing.T, a answer, status, code int, msgPart string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d (body %v)", a.status, status, a.body)
	}
	if got := int(a.body["code"].(float64)); got != code {
		t.Errorf("code = %d, want %d (body %v)", got, code, a.body)
	}
	if got := int(a.body["status"].(float64)); got != status {
		t.Errorf("body status = %d, want %d", got, status)
	}
	if got, want := a.body["more_info"], "https://www.twilio.com/docs/errors/"+strconv.Itoa(code); got != want {
		t.Errorf("more_info = %v, want %s", got, want)
	}
	if msg, _ := a.body["message"].(string); !strings.Contains(msg, msgPart) {
		t.Errorf("message = %q, want it to contain %q", msg, msgPart)
	}
}

func accept() url.Values { return url.Values{"ReservationStatus": {"accepted"}} }

func TestAuth(t *testing.T) {
	key, secret := NewSid("SK", 9), "keysecret"
	s := NewServer(Config{APIKeys: map[string]string{key: secret}})
	defer s.Close()

	for i, tc := range []struct {
		name, user, pass string
		want             int
	}{
		{"none", "-", "", 401},
		{"wrong token", s.AccountSid, "nope", 401},
		{"unknown account", NewSid("AC", 2), s.AuthToken, 401},
		{"key with token", key, s.AuthToken, 401},
		{"account with key secret", s.AccountSid, secret, 401},
		{"api key", key, secret, 200},
		{"account", s.AccountSid, s.AuthToken, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, s, http.MethodPost, taskPath(NewSid("WR", uint64(i+1))), accept(), tc.user, tc.pass)
			if tc.want == 200 {
				if a.status != 200 {
					t.Fatalf("status = %d, body %v", a.status, a.body)
				}
				return
			}
			wantError(t, a, 401, 20003, "Authenticate")
			if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic") {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
	reqs := s.Requests()
	if got := reqs[len(reqs)-2].User; got != key {
		t.Errorf("recorded user = %q, want %q", got, key)
	}
}

func TestSidPatternsAndRoutes(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	wr := NewSid("WR", 1)
	for _, path := range []string{
		"/v1/Workspaces/WS123/Tasks/" + wt + "/Reservations/" + wr,
		"/v1/Workspaces/" + ws + "/Tasks/WT" + strings.Repeat("g", 32) + "/Reservations/" + wr,
		"/v1/Workspaces/" + ws + "/Tasks/" + wt + "/Reservations/" + wr[:33],
		"/v1/Workspaces/" + ws + "/Tasks/" + wt + "/Reservations/" + NewSid("WK", 1),
		"/v1/Workspaces/" + ws + "/Workers/" + wt + "/Reservations/" + wr,
		"/v1/Workspaces/" + ws + "/Activities/" + wa + "/Reservations/" + wr,
		"/v1/Workspaces/" + ws + "/Tasks/" + wt,
		"/2010-04-01/Accounts",
	} {
		wantError(t, post(t, s, path, accept()), 404, 20404, path)
	}
	// Either case of hex digits is valid.
	upper := "WR" + strings.Repeat("AB", 16)
	if a := post(t, s, taskPath(upper), accept()); a.status != 200 {
		t.Errorf("upper-case SID: status %d %v", a.status, a.body)
	}
	wantError(t, do(t, s, http.MethodDelete, taskPath(wr), nil, "", ""), 405, 20004, "Method not allowed")
}

func TestFormValidation(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	conf := func(kv ...string) url.Values {
		v := url.Values{"Instruction": {"conference"}}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	for name, form := range map[string]url.Values{
		"empty":                         {},
		"bad status":                    {"ReservationStatus": {"maybe"}},
		"status twice":                  {"ReservationStatus": {"accepted", "accepted"}},
		"bad instruction":               {"Instruction": {"dance"}},
		"accept as instruction":         {"Instruction": {"accept"}},
		"unknown parameter":             {"ReservationStatus": {"accepted"}, "Colour": {"blue"}},
		"snake case name":               {"Instruction": {"call"}, "call_from": {"+15005550006"}, "CallUrl": {"https://example.com/a"}},
		"bad activity sid":              {"ReservationStatus": {"rejected"}, "WorkerActivitySid": {"WA123"}},
		"instruction param w/o instr":   {"ReservationStatus": {"accepted"}, "CallFrom": {"+15005550006"}},
		"status with instruction":       conf("ReservationStatus", "accepted"),
		"other instruction's param":     {"Instruction": {"dequeue"}, "DequeueFrom": {"+1"}, "CallFrom": {"+1"}},
		"dequeue without from":          {"Instruction": {"dequeue"}, "DequeueTo": {"+15551230000"}},
		"dequeue record":                {"Instruction": {"dequeue"}, "DequeueFrom": {"+1"}, "DequeueRecord": {"yes"}},
		"dequeue timeout":               {"Instruction": {"dequeue"}, "DequeueFrom": {"+1"}, "DequeueTimeout": {"ten"}},
		"dequeue events comma-joined":   {"Instruction": {"dequeue"}, "DequeueFrom": {"+1"}, "DequeueStatusCallbackEvent": {"initiated,ringing"}},
		"dequeue callback url":          {"Instruction": {"dequeue"}, "DequeueFrom": {"+1"}, "DequeueStatusCallbackUrl": {"/relative"}},
		"call without url":              {"Instruction": {"call"}, "CallFrom": {"+1"}},
		"call record":                   {"Instruction": {"call"}, "CallFrom": {"+1"}, "CallUrl": {"https://example.com/a"}, "CallRecord": {"true"}},
		"call accept":                   {"Instruction": {"call"}, "CallFrom": {"+1"}, "CallUrl": {"https://example.com/a"}, "CallAccept": {"yes"}},
		"call timeout":                  {"Instruction": {"call"}, "CallFrom": {"+1"}, "CallUrl": {"https://example.com/a"}, "CallTimeout": {"1.5"}},
		"redirect call sid":             {"Instruction": {"redirect"}, "RedirectCallSid": {"CA1"}, "RedirectUrl": {"https://example.com/a"}},
		"conference beep":               conf("Beep", "loud"),
		"conference record":             conf("Record", "record-from-start"),
		"conference conference record":  conf("ConferenceRecord", "always"),
		"conference status event":       conf("StatusCallbackEvent", "initiated", "StatusCallbackEvent", "done"),
		"conference conference event":   conf("ConferenceStatusCallbackEvent", "ringing"),
		"conference timeout":            conf("Timeout", "soon"),
		"conference max participants":   conf("MaxParticipants", "1"),
		"conference method":             conf("StatusCallbackMethod", "PUT"),
		"conference muted":              conf("Muted", "1"),
		"conference post work sid":      conf("PostWorkActivitySid", wt),
		"conference timeout twice":      conf("Timeout", "10", "Timeout", "20"),
		"conference wait method":        conf("WaitMethod", "get"),
		"conference conf cb method":     conf("ConferenceStatusCallbackMethod", "PUT"),
		"conference rec cb method":      conf("RecordingStatusCallbackMethod", "DELETE"),
		"conference conf rec cb":        conf("ConferenceRecordingStatusCallback", "/relative"),
		"conference conf rec cb method": conf("ConferenceRecordingStatusCallbackMethod", "PATCH"),
		"conference recording channels": conf("RecordingChannels", "stereo"),
		"conference trim":               conf("ConferenceTrim", "trim"),
		"conference region":             conf("Region", "eu1"),
		"conference jitter buffer":      conf("JitterBufferSize", "huge"),
		"conference sip user twice":     conf("SipAuthUsername", "a", "SipAuthUsername", "b"),
		"supervise mode":                {"Instruction": {"supervise"}, "SupervisorMode": {"listen"}},
	} {
		t.Run(name, func(t *testing.T) {
			wr := NewSid("WR", uint64(len(s.Requests())+1))
			wantError(t, post(t, s, taskPath(wr), form), 400, 20001, "")
			if r, _ := s.Reservation(wr); r.Status != "" && r.Status != "pending" {
				t.Errorf("refused update changed the reservation to %s", r.Status)
			}
		})
	}

	t.Run("content type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+taskPath(NewSid("WR", 999)), strings.NewReader(`{"ReservationStatus":"accepted"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(s.AccountSid, s.AuthToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("status = %d, want 400", resp.StatusCode)
		}
	})

	t.Run("worker path has no supervise", func(t *testing.T) {
		wantError(t, post(t, s, workerPath(NewSid("WR", 998)), url.Values{"Instruction": {"supervise"}, "Supervisor": {"client:sup"}}), 400, 20001, "supervise")
	})
}

func TestValidUpdates(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	for name, tc := range map[string]struct {
		form       url.Values
		wantStatus string
	}{
		"accept": {accept(), "accepted"},
		"reject": {url.Values{"ReservationStatus": {"rejected"}, "WorkerActivitySid": {wa}}, "rejected"},
		// Without WorkerActivitySid the worker stays in its activity.
		"reject and stay": {url.Values{"ReservationStatus": {"rejected"}}, "rejected"},
		"dequeue":         {url.Values{"Instruction": {"dequeue"}, "DequeueFrom": {"+15005550006"}, "DequeueTo": {"client:joey"}, "DequeueRecord": {"record-from-answer"}, "DequeueTimeout": {"20"}, "DequeueStatusCallbackUrl": {"https://example.com/s"}, "DequeueStatusCallbackEvent": {"initiated", "completed"}, "DequeuePostWorkActivitySid": {wa}}, "accepted"},
		"call":            {url.Values{"Instruction": {"call"}, "CallFrom": {"+15005550006"}, "CallUrl": {"https://example.com/a"}, "CallTo": {"+15551230000"}}, "pending"},
		"call+acc":        {url.Values{"Instruction": {"call"}, "CallFrom": {"+15005550006"}, "CallUrl": {"https://example.com/a"}, "CallAccept": {"true"}, "CallRecord": {"do-not-record"}, "CallTimeout": {"30"}}, "accepted"},
		"redirect":        {url.Values{"Instruction": {"redirect"}, "RedirectCallSid": {ca}, "RedirectUrl": {"https://example.com/r"}, "RedirectAccept": {"True"}}, "accepted"},
		"conference": {url.Values{"Instruction": {"conference"}, "To": {"client:joey"}, "From": {"+15005550006"}, "Timeout": {"20"},
			"StatusCallback": {"https://example.com/s"}, "StatusCallbackEvent": {"initiated", "ringing", "answered", "completed"},
			"Record": {"true"}, "Muted": {"false"}, "Beep": {"onEnter"}, "StartConferenceOnEnter": {"true"}, "EndConferenceOnExit": {"false"},
			"EndConferenceOnCustomerExit": {"true"}, "BeepOnCustomerEntrance": {"false"}, "WaitUrl": {"http://example.com/hold"}, "EarlyMedia": {"true"},
			"MaxParticipants": {"10"}, "ConferenceStatusCallback": {"https://example.com/c"}, "ConferenceStatusCallbackEvent": {"start", "end", "join"},
			"ConferenceRecord": {"record-from-start"}, "RecordingStatusCallback": {"https://example.com/rec"}, "PostWorkActivitySid": {wa}}, "accepted"},
		"conference, the other fields": {url.Values{"Instruction": {"conference"}, "StatusCallbackMethod": {"GET"}, "WaitMethod": {"GET"},
			"ConferenceStatusCallbackMethod": {"POST"}, "RecordingChannels": {"dual"}, "RecordingStatusCallbackMethod": {"GET"},
			"ConferenceRecordingStatusCallback": {"https://example.com/cr"}, "ConferenceRecordingStatusCallbackMethod": {"POST"},
			"ConferenceTrim": {"do-not-trim"}, "Region": {"de1"}, "SipAuthUsername": {"agent"}, "SipAuthPassword": {"s3cret"},
			"JitterBufferSize": {"off"}}, "accepted"},
	} {
		t.Run(name, func(t *testing.T) {
			wr := NewSid("WR", uint64(len(s.Requests())+1))
			a := post(t, s, taskPath(wr), tc.form)
			if a.status != 200 {
				t.Fatalf("status %d: %v", a.status, a.body)
			}
			want := map[string]any{
				"account_sid": s.AccountSid, "sid": wr, "task_sid": wt, "workspace_sid": ws, "worker_sid": nil, "worker_name": nil,
				"reservation_status": tc.wantStatus, "url": s.URL + taskPath(wr),
				"links": map[string]any{"workspace": s.URL + "/v1/Workspaces/" + ws, "task": s.URL + "/v1/Workspaces/" + ws + "/Tasks/" + wt},
			}
			got := a.body
			for _, k := range []string{"date_created", "date_updated"} {
				if _, err := time.Parse(time.RFC3339, got[k].(string)); err != nil {
					t.Errorf("%s: %v", k, err)
				}
				delete(got, k)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("resource (-want +got):\n%s", d)
			}
			reqs := s.RequestsFor(wr)
			if len(reqs) != 1 {
				t.Fatalf("recorded %d requests", len(reqs))
			}
			if d := cmp.Diff(tc.form, reqs[0].Form); d != "" {
				t.Errorf("recorded form (-sent +recorded):\n%s", d)
			}
		})
	}
}

func TestNotPending(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	wr := NewSid("WR", 1)
	if a := post(t, s, taskPath(wr), accept()); a.status != 200 {
		t.Fatalf("first accept: %d %v", a.status, a.body)
	}
	wantError(t, post(t, s, taskPath(wr), accept()), 400, 20001, "Reservation "+wr+" is not currently in a Pending state.")
	wantError(t, post(t, s, taskPath(wr), url.Values{"Instruction": {"conference"}}), 400, 40136,
		"Unable to execute Conference instruction. Reservation "+wr+" is not currently in a Pending state.")
	wantError(t, post(t, s, taskPath(wr), url.Values{"Instruction": {"call"}, "CallFrom": {"+1"}, "CallUrl": {"https://e.com/"}}), 400, 40114, "Call instruction")
	wantError(t, post(t, s, taskPath(wr), url.Values{"Instruction": {"dequeue"}, "DequeueFrom": {"+1"}}), 400, 40135, "Dequeue instruction")
	wantError(t, post(t, s, taskPath(wr), url.Values{"Instruction": {"redirect"}, "RedirectCallSid": {ca}, "RedirectUrl": {"https://e.com/"}}), 400, 40123, "Redirect instruction")

	// An accepted reservation may still be wrapped up and completed.
	if a := post(t, s, taskPath(wr), url.Values{"ReservationStatus": {"completed"}}); a.status != 200 {
		t.Errorf("complete accepted reservation: %d %v", a.status, a.body)
	}

	// A call without CallAccept leaves the reservation pending: the
	// application accepts it afterwards.
	wr2 := NewSid("WR", 2)
	post(t, s, taskPath(wr2), url.Values{"Instruction": {"call"}, "CallFrom": {"+1"}, "CallUrl": {"https://e.com/"}})
	if a := post(t, s, taskPath(wr2), accept()); a.status != 200 {
		t.Errorf("accept after call: %d %v", a.status, a.body)
	}

	// Pre-registered reservations in another state refuse at once.
	wr3 := NewSid("WR", 3)
	s.AddReservation(Reservation{Sid: wr3, WorkspaceSid: ws, TaskSid: wt, Status: "timeout"})
	wantError(t, post(t, s, taskPath(wr3), accept()), 400, 20001, "not currently in a Pending state")
}

func TestRegisteredAndFetch(t *testing.T) {
	s := NewServer(Config{RequireRegistered: true})
	defer s.Close()
	wr := NewSid("WR", 1)
	wantError(t, post(t, s, taskPath(wr), accept()), 404, 20404, "was not found")

	s.AddReservation(Reservation{Sid: wr, WorkspaceSid: ws, TaskSid: wt, WorkerSid: wk, WorkerName: "Doug"})
	a := do(t, s, http.MethodGet, taskPath(wr), nil, "", "")
	if a.status != 200 || a.body["reservation_status"] != "pending" || a.body["worker_name"] != "Doug" {
		t.Fatalf("fetch: %d %v", a.status, a.body)
	}
	// Another task's path does not reach this reservation.
	other := "/v1/Workspaces/" + ws + "/Tasks/" + NewSid("WT", 99) + "/Reservations/" + wr
	wantError(t, post(t, s, other, accept()), 404, 20404, other)

	a = post(t, s, workerPath(wr), url.Values{"ReservationStatus": {"rejected"}, "WorkerActivitySid": {wa}})
	if a.status != 200 || a.body["url"] != s.URL+workerPath(wr) || a.body["reservation_status"] != "rejected" {
		t.Fatalf("worker-path reject: %d %v", a.status, a.body)
	}
	if r, _ := s.Reservation(wr); r.Status != "rejected" {
		t.Errorf("state = %+v", r)
	}
}

func TestFaults(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	wr, other := NewSid("WR", 1), NewSid("WR", 2)
	s.Inject(wr, Fault{Status: 429, RetryAfter: "1"}, Fault{Status: 503})
	s.Inject("", Fault{Status: 500, Code: 20500, Message: "boom"})

	a := post(t, s, taskPath(wr), accept())
	wantError(t, a, 429, 20429, "Too Many Requests")
	if got := a.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	wantError(t, post(t, s, taskPath(wr), accept()), 503, 20503, "")
	// The reservation's own faults are used up; the global one is next.
	wantError(t, post(t, s, taskPath(wr), accept()), 500, 20500, "boom")
	if a := post(t, s, taskPath(wr), accept()); a.status != 200 {
		t.Errorf("after faults: %d %v", a.status, a.body)
	}
	if a := post(t, s, taskPath(other), accept()); a.status != 200 {
		t.Errorf("other reservation: %d %v", a.status, a.body)
	}
	// Faults do not bypass authentication.
	s.Inject("", Fault{Status: 503})
	wantError(t, do(t, s, http.MethodPost, taskPath(NewSid("WR", 3)), accept(), s.AccountSid, "bad"), 401, 20003, "")
	wantError(t, post(t, s, taskPath(NewSid("WR", 3)), accept()), 503, 20503, "")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reqs, err := s.WaitRequests(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []int
	for _, r := range reqs {
		statuses = append(statuses, r.Status)
	}
	if d := cmp.Diff([]int{429, 503, 500, 200, 200, 401, 503}, statuses); d != "" {
		t.Errorf("statuses (-want +got):\n%s", d)
	}
}

func TestDropAndHold(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	wr := NewSid("WR", 1)
	s.Inject(wr, Fault{Drop: true})
	req, _ := http.NewRequest(http.MethodPost, s.URL+taskPath(wr), strings.NewReader(accept().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.AccountSid, s.AuthToken)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped request answered %d", resp.StatusCode)
	}

	hold := make(chan struct{})
	s.Inject("", Fault{Hold: hold}, Fault{Hold: hold})
	done := make(chan int, 2)
	for i := range 2 {
		go func() {
			form := accept().Encode()
			req, _ := http.NewRequest(http.MethodPost, s.URL+taskPath(NewSid("WR", uint64(10+i))), strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(s.AccountSid, s.AuthToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	// Both are held at once: wait until the fake has both in hand.
	deadline := time.Now().Add(5 * time.Second)
	for s.MaxInFlight() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("held requests never both arrived")
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)
	for range 2 {
		if st := <-done; st != 200 {
			t.Errorf("held request answered %d", st)
		}
	}
	if got := s.Requests()[0].Status; got != -1 {
		t.Errorf("dropped request recorded status %d, want -1", got)
	}
}

func TestWaitRequestsDeadline(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.WaitRequests(ctx, 1); err == nil {
		t.Fatal("WaitRequests returned without requests")
	}
}
