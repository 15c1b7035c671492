package taskroutertest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func workflowPath(ws, wf string) string { return "/v1/Workspaces/" + ws + "/Workflows/" + wf }

func get(t *testing.T, s *Server, path, user, pass string) answer {
	t.Helper()
	return do(t, s, http.MethodGet, path, nil, user, pass)
}

// A fetched Workflow has every field of the OpenAPI's taskrouter.v1.workspace.workflow,
// with null for the callback URLs left unset.
func TestWorkflowFetch(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	wf := NewSid("WW", 7)
	created := time.Date(2014, 5, 14, 10, 50, 2, 0, time.UTC)
	s.SetWorkflow(Workflow{Sid: wf, WorkspaceSid: ws, FriendlyName: "Support", AssignmentCallbackURL: "https://example.com/assignment_callback",
		Configuration: `{"task_routing":{}}`, TaskReservationTimeout: 300, Created: created, Updated: created.Add(time.Hour)})
	a := get(t, s, workflowPath(ws, wf), "", "")
	if a.status != 200 {
		t.Fatalf("status = %d, body %v", a.status, a.body)
	}
	self := s.URL + workflowPath(ws, wf)
	want := map[string]any{
		"sid":                              wf,
		"account_sid":                      s.AccountSid,
		"workspace_sid":                    ws,
		"friendly_name":                    "Support",
		"assignment_callback_url":          "https://example.com/assignment_callback",
		"fallback_assignment_callback_url": nil,
		"configuration":                    `{"task_routing":{}}`,
		"task_reservation_timeout":         float64(300),
		"document_content_type":            "application/json",
		"date_created":                     "2014-05-14T10:50:02Z",
		"date_updated":                     "2014-05-14T11:50:02Z",
		"url":                              self,
		"links": map[string]any{
			"statistics":            self + "/Statistics",
			"real_time_statistics":  self + "/RealTimeStatistics",
			"cumulative_statistics": self + "/CumulativeStatistics",
		},
	}
	if diff := cmp.Diff(want, a.body); diff != "" {
		t.Errorf("GET %s (-want +got):\n%s", workflowPath(ws, wf), diff)
	}

	// TaskRouter's default timeout is 120 seconds.
	other := NewSid("WW", 8)
	s.SetWorkflow(Workflow{Sid: other, WorkspaceSid: ws})
	if a := get(t, s, workflowPath(ws, other), "", ""); a.body["task_reservation_timeout"] != float64(120) {
		t.Errorf("default task_reservation_timeout = %v; want 120", a.body["task_reservation_timeout"])
	}

	// Workflow fetches are counted apart from the Reservations' requests.
	if n := len(s.Requests()); n != 0 {
		t.Errorf("Requests() = %d after Workflow fetches only; want 0", n)
	}
	if got := s.WorkflowRequests(); len(got) != 2 || got[0].Status != 200 || got[0].Path != workflowPath(ws, wf) || got[0].User != s.AccountSid {
		t.Errorf("WorkflowRequests() = %+v; want two answered 200, the first for %s by %s", got, workflowPath(ws, wf), s.AccountSid)
	}
}

func TestWorkflowErrors(t *testing.T) {
	key, secret := NewSid("SK", 9), "keysecret"
	s := NewServer(Config{APIKeys: map[string]string{key: secret}})
	defer s.Close()
	wf := NewSid("WW", 7)
	s.SetWorkflow(Workflow{Sid: wf, WorkspaceSid: ws, TaskReservationTimeout: 30})

	for _, tc := range []struct{ user, pass string }{{"-", ""}, {s.AccountSid, "nope"}, {key, s.AuthToken}} {
		a := get(t, s, workflowPath(ws, wf), tc.user, tc.pass)
		wantError(t, a, 401, 20003, "Authenticate")
		if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic") {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	}
	if a := get(t, s, workflowPath(ws, wf), key, secret); a.status != 200 {
		t.Errorf("GET with an API key: status %d %v; want 200", a.status, a.body)
	}
	for _, path := range []string{
		workflowPath("WS123", wf),
		workflowPath(ws, "WW"+strings.Repeat("g", 32)),
		workflowPath(ws, wf[:33]),
		workflowPath(ws, NewSid("WQ", 7)),
		workflowPath(ws, NewSid("WW", 99)),       // unknown
		workflowPath(NewSid("WS", 2), wf),        // another workspace's
		workflowPath(ws, wf) + "/Statistics/xyz", // not a Workflow
	} {
		wantError(t, get(t, s, path, "", ""), 404, 20404, path)
	}
	a := do(t, s, http.MethodDelete, workflowPath(ws, wf), nil, "", "")
	wantError(t, a, 405, 20004, "Method not allowed")
	if got := a.header.Get("Allow"); got != "GET" {
		t.Errorf("Allow = %q; want GET", got)
	}
}

func TestWorkflowFaults(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	wf, other := NewSid("WW", 7), NewSid("WW", 8)
	s.SetWorkflow(Workflow{Sid: wf, WorkspaceSid: ws})
	s.SetWorkflow(Workflow{Sid: other, WorkspaceSid: ws})
	s.InjectWorkflow(wf, Fault{Status: 503})
	s.InjectWorkflow("", Fault{Status: 429, RetryAfter: "7"})
	// A reservation's faults are not the Workflows' and the reverse.
	s.Inject("", Fault{Status: 500})

	wantError(t, get(t, s, workflowPath(ws, wf), "", ""), 503, 20503, "Service Unavailable")
	a := get(t, s, workflowPath(ws, wf), "", "")
	wantError(t, a, 429, 20429, "Too Many Requests")
	if got := a.header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After = %q; want 7", got)
	}
	if a := get(t, s, workflowPath(ws, other), "", ""); a.status != 200 {
		t.Errorf("third fetch: status %d; want 200 with the faults used up", a.status)
	}
	wantError(t, post(t, s, taskPath(NewSid("WR", 1)), accept()), 500, 20500, "Internal Server Error")

	hold := make(chan struct{})
	s.InjectWorkflow(wf, Fault{Hold: hold}, Fault{Drop: true})
	done := make(chan answer, 1)
	go func() { done <- get(t, s, workflowPath(ws, wf), "", "") }()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		reqs := s.WorkflowRequests()
		if len(reqs) == 4 && reqs[3].Status == 0 {
			break // held
		}
		select {
		case <-timer.C:
			t.Fatalf("held request not seen: %+v", reqs)
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(hold)
	if a := <-done; a.status != 200 {
		t.Errorf("held fetch: status %d; want 200 once released", a.status)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+workflowPath(ws, wf), nil)
	req.SetBasicAuth(s.AccountSid, s.AuthToken)
	// A connection of its own: net/http sends a GET again when a reused one drops.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := fresh.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped fetch answered %d; want a network error", resp.StatusCode)
	}
	stop := make(chan struct{})
	close(stop)
	reqs := s.WaitWorkflowRequests(stop, 5)
	if got := reqs[len(reqs)-1].Status; got != -1 {
		t.Errorf("dropped fetch recorded status %d; want -1", got)
	}
}
