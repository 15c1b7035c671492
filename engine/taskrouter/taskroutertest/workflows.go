package taskroutertest

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Workflow is the fake's view of one TaskRouter Workflow: what GET
// /v1/Workspaces/{WorkspaceSid}/Workflows/{Sid} answers.
type Workflow struct {
	Sid          string
	WorkspaceSid string
	FriendlyName string
	// AssignmentCallbackURL and FallbackAssignmentCallbackURL are null in the
	// answer when empty.
	AssignmentCallbackURL         string
	FallbackAssignmentCallbackURL string
	// Configuration is the Workflow's configuration document; empty means a
	// one-queue FIFO configuration.
	Configuration string
	// TaskReservationTimeout is in seconds, as TaskRouter keeps it; 0 means
	// TaskRouter's default, 120.
	TaskReservationTimeout int
	Created, Updated       time.Time
}

// workflows is the fake's Workflows resource. Its requests and faults are
// kept apart from the Reservations': a test that counts REST calls, or scripts
// their faults, does not see the Workflow fetches of the code under test.
type workflows struct {
	mu       sync.Mutex
	byKey    map[string]Workflow // by Sid
	faults   map[string][]Fault  // by Workflow SID; "" = any
	requests []Request
	changed  chan struct{} // closed and replaced on every answered request
	inFlight int
	maxIn    int
}

var workflowSidRE = regexp.MustCompile(`^WW[0-9a-fA-F]{32}$`)

// SetWorkflow adds a Workflow, or replaces the one with its Sid. Empty fields
// get TaskRouter's defaults.
func (s *Server) SetWorkflow(wf Workflow) {
	if wf.TaskReservationTimeout == 0 {
		wf.TaskReservationTimeout = 120
	}
	if wf.FriendlyName == "" {
		wf.FriendlyName = "Default Fifo Workflow"
	}
	if wf.Configuration == "" {
		wf.Configuration = `{"task_routing":{"filters":[],"default_filter":{"queue":"` + NewSid("WQ", 1) + `"}}}`
	}
	now := time.Now().UTC()
	if wf.Created.IsZero() {
		wf.Created = now
	}
	if wf.Updated.IsZero() {
		wf.Updated = now
	}
	w := s.workflows()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byKey[wf.Sid] = wf
}

// InjectWorkflow queues faults for fetches of the Workflow workflowSid, or of
// any Workflow when workflowSid is "", as Inject does for reservations.
func (s *Server) InjectWorkflow(workflowSid string, faults ...Fault) {
	w := s.workflows()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults[workflowSid] = append(w.faults[workflowSid], faults...)
}

// WorkflowRequests returns a copy of every request to the Workflows resource,
// in arrival order.
func (s *Server) WorkflowRequests() []Request {
	w := s.workflows()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Request(nil), w.requests...)
}

// MaxWorkflowsInFlight is the largest number of Workflow requests the fake
// was answering at once.
func (s *Server) MaxWorkflowsInFlight() int {
	w := s.workflows()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxIn
}

// WaitWorkflowRequests blocks until at least n Workflow requests have been
// answered, or until done is closed, and returns the requests so far.
func (s *Server) WaitWorkflowRequests(done <-chan struct{}, n int) []Request {
	w := s.workflows()
	for {
		w.mu.Lock()
		answered := 0
		for _, r := range w.requests {
			if r.Status != 0 {
				answered++
			}
		}
		out, changed := append([]Request(nil), w.requests...), w.changed
		w.mu.Unlock()
		if answered >= n {
			return out
		}
		select {
		case <-changed:
		case <-done:
			return out
		}
	}
}

// workflows is s's Workflows resource, made on first use.
func (s *Server) workflows() *workflows {
	s.wfOnce.Do(func() {
		s.wf = &workflows{byKey: map[string]Workflow{}, faults: map[string][]Fault{}, changed: make(chan struct{})}
	})
	return s.wf
}

// serveWorkflow answers a request whose path is under a Workspace's
// Workflows and reports true, or reports false for any other path.
func (s *Server) serveWorkflow(w http.ResponseWriter, req *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/")
	if len(parts) != 5 || parts[0] != "v1" || parts[1] != "Workspaces" || parts[3] != "Workflows" {
		return false
	}
	wfs := s.workflows()
	user, pass, hasAuth := req.BasicAuth()
	wfs.mu.Lock()
	idx := len(wfs.requests)
	wfs.requests = append(wfs.requests, Request{Method: req.Method, Path: req.URL.Path, User: user, Time: time.Now()})
	wfs.inFlight++
	wfs.maxIn = max(wfs.maxIn, wfs.inFlight)
	wfs.mu.Unlock()
	// finish records the answer once; a drop records it before the connection
	// is closed, so that a client that has seen the error sees it here too.
	var finished bool
	finish := func(status int) {
		wfs.mu.Lock()
		defer wfs.mu.Unlock()
		if finished {
			return
		}
		finished = true
		wfs.requests[idx].Status = status
		wfs.inFlight--
		close(wfs.changed)
		wfs.changed = make(chan struct{})
	}
	defer finish(-1) // a handler that panics (ErrAbortHandler) dropped the request
	finish(s.answerWorkflow(w, req, parts[2], parts[4], s.authorized(user, pass, hasAuth), finish))
	return true
}

// answerWorkflow writes the answer to one Workflow request and returns its
// status (-1 for a drop). The checks come in TaskRouter's order:
// credentials, the SIDs' shapes, the method, then the Workflow itself.
func (s *Server) answerWorkflow(w http.ResponseWriter, req *http.Request, workspace, sid string, authOK bool, finish func(int)) int {
	if !authOK {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		e := errorFor(http.StatusUnauthorized)
		writeError(w, e)
		return e.Status
	}
	if !workspaceSidRE.MatchString(workspace) || !workflowSidRE.MatchString(sid) {
		e := notFound(req.URL.Path)
		writeError(w, e)
		return e.Status
	}
	if req.Method != http.MethodGet {
		// The fake keeps Workflows for fetching only; tests set them with
		// SetWorkflow.
		w.Header().Set("Allow", "GET")
		e := errorFor(http.StatusMethodNotAllowed)
		writeError(w, e)
		return e.Status
	}
	wfs := s.workflows()
	wfs.mu.Lock()
	f, faulted := nextFault(wfs.faults, sid)
	wfs.mu.Unlock()
	if faulted {
		if status, done := s.fault(w, req, f, finish); done {
			return status
		}
	}
	wfs.mu.Lock()
	wf, ok := wfs.byKey[sid]
	wfs.mu.Unlock()
	if !ok || wf.WorkspaceSid != workspace {
		e := notFound(req.URL.Path)
		writeError(w, e)
		return e.Status
	}
	writeJSON(w, http.StatusOK, s.workflowResource(wf))
	return http.StatusOK
}

// nextFault takes the next fault for key, or else for any; the caller holds
// the lock that guards faults.
func nextFault(faults map[string][]Fault, key string) (Fault, bool) {
	for _, k := range []string{key, ""} {
		if q := faults[k]; len(q) > 0 {
			faults[k] = q[1:]
			return q[0], true
		}
	}
	return Fault{}, false
}

// fault plays f: a hold, then a drop or an error answer; finish records a
// drop. done is false when f only held the request, which is then answered
// normally.
func (s *Server) fault(w http.ResponseWriter, req *http.Request, f Fault, finish func(int)) (status int, done bool) {
	if f.Hold != nil {
		select {
		case <-f.Hold:
		case <-req.Context().Done():
		}
	}
	if f.Drop {
		finish(-1)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return -1, true
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return 0, false
	}
	e := errorFor(f.Status)
	if f.Code != 0 {
		e.Code = f.Code
	}
	if f.Message != "" {
		e.Message = f.Message
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeError(w, e)
	return e.Status, true
}

// workflowResource is taskrouter.v1.workspace.workflow as JSON.
type workflowResource struct {
	AccountSid                    string            `json:"account_sid"`
	AssignmentCallbackURL         *string           `json:"assignment_callback_url"`
	Configuration                 string            `json:"configuration"`
	DateCreated                   string            `json:"date_created"`
	DateUpdated                   string            `json:"date_updated"`
	DocumentContentType           string            `json:"document_content_type"`
	FallbackAssignmentCallbackURL *string           `json:"fallback_assignment_callback_url"`
	FriendlyName                  string            `json:"friendly_name"`
	Sid                           string            `json:"sid"`
	TaskReservationTimeout        int               `json:"task_reservation_timeout"`
	URL                           string            `json:"url"`
	WorkspaceSid                  string            `json:"workspace_sid"`
	Links                         map[string]string `json:"links"`
}

func (s *Server) workflowResource(wf Workflow) workflowResource {
	self := s.URL + "/v1/Workspaces/" + wf.WorkspaceSid + "/Workflows/" + wf.Sid
	return workflowResource{
		AccountSid:                    s.AccountSid,
		AssignmentCallbackURL:         nullable(wf.AssignmentCallbackURL),
		Configuration:                 wf.Configuration,
		DateCreated:                   wf.Created.UTC().Format(time.RFC3339),
		DateUpdated:                   wf.Updated.UTC().Format(time.RFC3339),
		DocumentContentType:           "application/json",
		FallbackAssignmentCallbackURL: nullable(wf.FallbackAssignmentCallbackURL),
		FriendlyName:                  wf.FriendlyName,
		Sid:                           wf.Sid,
		TaskReservationTimeout:        wf.TaskReservationTimeout,
		URL:                           self,
		WorkspaceSid:                  wf.WorkspaceSid,
		Links: map[string]string{
			"statistics":            self + "/Statistics",
			"real_time_statistics":  self + "/RealTimeStatistics",
			"cumulative_statistics": self + "/CumulativeStatistics",
		},
	}
}
