// Package taskroutertest runs a fake Twilio TaskRouter Reservations API for
// tests, in the manner of net/http/httptest, with the Workflows a test sets
// (workflows.go) to fetch.
//
// The fake is deliberately strict: it checks HTTP Basic credentials, path SID
// patterns, the form encoding, every parameter name and enum value of the
// UpdateTaskReservation operation, and the reservation's state, answering the
// way TaskRouter does (Twilio-shaped JSON errors). Tests script faults (429
// with Retry-After, 5xx, dropped connections, held answers) and read back
// every request the fake received.
package taskroutertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults used when a Config leaves the credentials empty.
const (
	DefaultAccountSid = "AC00000000000000000000000000000001"
	DefaultAuthToken  = "0123456789abcdef0123456789abcdef"
)

// Config sets up a Server.
type Config struct {
	// AccountSid and AuthToken are the HTTP Basic credentials the fake
	// accepts; empty means DefaultAccountSid and DefaultAuthToken.
	AccountSid string
	AuthToken  string
	// APIKeys are further accepted username:password pairs: API key SID
	// (SK…) to secret, as Twilio accepts API keys in place of the account.
	APIKeys map[string]string
	// RequireRegistered makes the fake answer 404 for reservations not added
	// with AddReservation; otherwise a reservation is created, pending, the
	// first time a request names it.
	RequireRegistered bool
}

// Reservation is the fake's view of one TaskRouter reservation.
type Reservation struct {
	Sid          string
	WorkspaceSid string
	TaskSid      string // "" until a request names it through the Tasks path
	WorkerSid    string // "" until a request names it through the Workers path
	WorkerName   string
	// Status is the reservation_status: pending, accepted, rejected, …
	Status string
	// Instruction is the last instruction executed on it, "" if none.
	Instruction string
	Created     time.Time
	Updated     time.Time
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	// Form is the parsed form body of a POST (nil for GET or when the body
	// did not parse).
	Form url.Values
	// User is the HTTP Basic username sent, "" if none.
	User string
	// ReservationSid is the Sid path segment, "" if the path did not parse.
	ReservationSid string
	Time           time.Time
	// Status is the HTTP status the fake answered; 0 while the request is
	// still being answered, -1 for a dropped connection.
	Status int
}

// Fault is a canned answer given in place of normal processing. Faults are
// consumed in the order they were injected, one per request, after the
// request has passed authentication and path checks.
type Fault struct {
	// Status is the HTTP status to answer with; 0 processes the request
	// normally (after Hold, if set).
	Status int
	// Code and Message make the Twilio error body; zero values are derived
	// from Status.
	Code    int
	Message string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Drop closes the connection without answering, as a network error.
	Drop bool
	// Hold delays the answer until the channel is closed or the client
	// goes away.
	Hold <-chan struct{}
}

// Server is a running fake TaskRouter.
type Server struct {
	// URL is the base URL of the fake, e.g. http://127.0.0.1:PORT, to be used
	// in place of https://taskrouter.twilio.com.
	URL string
	// AccountSid and AuthToken are the credentials it accepts.
	AccountSid string
	AuthToken  string

	srv        *httptest.Server
	apiKeys    map[string]string
	registered bool

	mu           sync.Mutex
	reservations map[string]*Reservation
	faults       map[string][]Fault // by ReservationSid; "" = any
	requests     []Request
	changed      chan struct{} // closed and replaced on every new request
	inFlight     int
	maxInFlight  int

	// Event callbacks (events.go).
	eventURL    string
	events      []SentEvent
	eventClient *http.Client
	emitting    sync.WaitGroup

	wfOnce sync.Once
	wf     *workflows // the Workflows resource (workflows.go)
}

// NewServer starts a fake TaskRouter. Close it when done.
func NewServer(cfg Config) *Server {
	s := &Server{
		AccountSid:   cfg.AccountSid,
		AuthToken:    cfg.AuthToken,
		apiKeys:      maps.Clone(cfg.APIKeys),
		registered:   cfg.RequireRegistered,
		reservations: make(map[string]*Reservation),
		faults:       make(map[string][]Fault),
		changed:      make(chan struct{}),
		eventClient:  &http.Client{Timeout: 15 * time.Second},
	}
	if s.AccountSid == "" {
		s.AccountSid = DefaultAccountSid
	}
	if s.AuthToken == "" {
		s.AuthToken = DefaultAuthToken
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down, waiting for requests in flight and the event callbacks
// they started.
func (s *Server) Close() {
	s.srv.Close()
	s.emitting.Wait()
}

// NewSid returns a valid SID with the two-letter prefix and n as its
// hexadecimal digits, e.g. NewSid("WR", 7) = "WR000…0007".
func NewSid(prefix string, n uint64) string {
	return fmt.Sprintf("%s%032x", prefix, n)
}

// AddReservation registers a reservation before any request names it.
// An empty Status means pending.
func (s *Server) AddReservation(r Reservation) {
	if r.Status == "" {
		r.Status = "pending"
	}
	now := time.Now().UTC()
	if r.Created.IsZero() {
		r.Created = now
	}
	if r.Updated.IsZero() {
		r.Updated = r.Created
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reservations[r.Sid] = &r
}

// Reservation returns the current state of a reservation.
func (s *Server) Reservation(sid string) (Reservation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reservations[sid]
	if !ok {
		return Reservation{}, false
	}
	return *r, true
}

// Inject queues faults for requests naming reservationSid, or for any
// request when reservationSid is "". A reservation's own faults are used
// before the global ones.
func (s *Server) Inject(reservationSid string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[reservationSid] = append(s.faults[reservationSid], faults...)
}

// Times returns n copies of f, to Inject "the next n requests fail".
func Times(n int, f Fault) []Fault {
	out := make([]Fault, n)
	for i := range out {
		out[i] = f
	}
	return out
}

// Requests returns a copy of every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyRequests()
}

// RequestsFor returns the requests that named reservationSid.
func (s *Server) RequestsFor(reservationSid string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.ReservationSid == reservationSid {
			out = append(out, r)
		}
	}
	return out
}

// WaitRequests blocks until at least n requests have been answered, or ctx
// is done, and returns the requests received so far.
func (s *Server) WaitRequests(ctx context.Context, n int) ([]Request, error) {
	for {
		s.mu.Lock()
		answered := 0
		for _, r := range s.requests {
			if r.Status != 0 {
				answered++
			}
		}
		changed := s.changed
		if answered >= n {
			defer s.mu.Unlock()
			return s.copyRequests(), nil
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Requests(), fmt.Errorf("waiting for %d answered requests, have %d: %w", n, answered, ctx.Err())
		}
	}
}

// MaxInFlight is the largest number of requests the fake was answering at
// once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

func (s *Server) copyRequests() []Request {
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Form = cloneValues(r.Form)
		out[i] = r
	}
	return out
}

// notify wakes WaitRequests; the caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// apiError is Twilio's JSON error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Twilio's generic error codes for HTTP statuses: 20003 Authenticate, 20004
// Method not allowed, 20404 not found, 20429 Too Many Requests, 20500
// Internal Server Error, 20503 Service Unavailable.
var statusCodes = map[int]struct {
	code int
	msg  string
}{
	400: {20001, "Invalid parameter"},
	401: {20003, "Authenticate"},
	403: {20403, "Forbidden"},
	404: {20404, "The requested resource was not found"},
	405: {20004, "Method not allowed"},
	429: {20429, "Too Many Requests"},
	500: {20500, "Internal Server Error"},
	502: {20502, "Bad Gateway"},
	503: {20503, "Service Unavailable"},
	504: {20504, "Gateway Timeout"},
}

func errorFor(status int) *apiError {
	e := &apiError{Status: status, Code: 20000 + status, Message: http.StatusText(status)}
	if c, ok := statusCodes[status]; ok {
		e.Code, e.Message = c.code, c.msg
	}
	return e
}

func writeError(w http.ResponseWriter, e *apiError) {
	e.MoreInfo = fmt.Sprintf("https://www.twilio.com/docs/errors/%d", e.Code)
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// route is a parsed Reservations path.
type route struct {
	workspace, task, worker, sid string
	workerPath                   bool
}

// path is the request path the route came from.
func (rt route) path() string {
	if rt.workerPath {
		return "/v1/Workspaces/" + rt.workspace + "/Workers/" + rt.worker + "/Reservations/" + rt.sid
	}
	return "/v1/Workspaces/" + rt.workspace + "/Tasks/" + rt.task + "/Reservations/" + rt.sid
}

// notFound is Twilio's 404, which names the path asked for.
func notFound(path string) *apiError {
	e := errorFor(http.StatusNotFound)
	e.Message = fmt.Sprintf("The requested resource %s was not found", path)
	return e
}

// parsePath splits /v1/Workspaces/{WS}/Tasks/{WT}/Reservations/{WR} or
// /v1/Workspaces/{WS}/Workers/{WK}/Reservations/{WR}. ok is false for any
// other shape; sidsOK is false when a segment does not match its pattern.
func parsePath(p string) (r route, ok, sidsOK bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) != 7 || parts[0] != "v1" || parts[1] != "Workspaces" || parts[5] != "Reservations" {
		return r, false, false
	}
	r.workspace, r.sid = parts[2], parts[6]
	sidsOK = workspaceSidRE.MatchString(r.workspace) && reservationSidRE.MatchString(r.sid)
	switch parts[3] {
	case "Tasks":
		r.task = parts[4]
		sidsOK = sidsOK && taskSidRE.MatchString(r.task)
	case "Workers":
		r.worker, r.workerPath = parts[4], true
		sidsOK = sidsOK && workerSidRE.MatchString(r.worker)
	default:
		return r, false, false
	}
	return r, true, sidsOK
}

func (s *Server) authorized(user, pass string, ok bool) bool {
	if !ok {
		return false
	}
	if user == s.AccountSid {
		return pass == s.AuthToken
	}
	secret, known := s.apiKeys[user]
	return known && strings.HasPrefix(user, "SK") && pass == secret
}

func (s *Server) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if s.serveWorkflow(w, req) {
		return
	}
	user, pass, hasAuth := req.BasicAuth()
	rt, pathOK, sidsOK := parsePath(req.URL.Path)

	rec := Request{Method: req.Method, Path: req.URL.Path, User: user, Time: time.Now()}
	if pathOK {
		rec.ReservationSid = rt.sid
	}
	var form url.Values
	var formErr *apiError
	if req.Method == http.MethodPost {
		form, formErr = parseForm(req)
		rec.Form = cloneValues(form)
	}

	s.mu.Lock()
	idx := len(s.requests)
	s.requests = append(s.requests, rec)
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()

	// finish records the answer once. A drop records it before the
	// connection is closed, so a client that has seen the error also sees
	// the drop in Requests.
	var finished bool
	finish := func(status int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if finished {
			return
		}
		finished = true
		s.requests[idx].Status = status
		s.inFlight--
		s.notify()
	}
	defer finish(-1) // a handler that panics (ErrAbortHandler) dropped the request
	finish(s.answer(w, req, answerInput{
		authOK: s.authorized(user, pass, hasAuth), rt: rt, pathOK: pathOK, sidsOK: sidsOK,
		form: form, formErr: formErr, finish: finish,
	}))
}

type answerInput struct {
	authOK         bool
	rt             route
	pathOK, sidsOK bool
	form           url.Values
	formErr        *apiError
	finish         func(status int)
}

// answer writes the response and returns its status (-1 for a drop).
func (s *Server) answer(w http.ResponseWriter, req *http.Request, in answerInput) int {
	if !in.authOK {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		e := errorFor(http.StatusUnauthorized)
		writeError(w, e)
		return e.Status
	}
	if !in.pathOK || !in.sidsOK {
		e := notFound(req.URL.Path)
		writeError(w, e)
		return e.Status
	}
	if req.Method != http.MethodPost && req.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		e := errorFor(http.StatusMethodNotAllowed)
		writeError(w, e)
		return e.Status
	}

	if f, ok := s.nextFault(in.rt.sid); ok {
		if f.Hold != nil {
			select {
			case <-f.Hold:
			case <-req.Context().Done():
			}
		}
		if f.Drop {
			in.finish(-1)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return -1
				}
			}
			panic(http.ErrAbortHandler) // closes the connection just the same
		}
		if f.Status != 0 {
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
			return e.Status
		}
	}

	if req.Method == http.MethodGet {
		return s.fetch(w, in.rt)
	}
	if in.formErr != nil {
		writeError(w, in.formErr)
		return in.formErr.Status
	}
	return s.update(w, in.rt, in.form)
}

func (s *Server) nextFault(sid string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range []string{sid, ""} {
		if q := s.faults[key]; len(q) > 0 {
			s.faults[key] = q[1:]
			return q[0], true
		}
	}
	return Fault{}, false
}

// parseForm reads an application/x-www-form-urlencoded body.
func parseForm(req *http.Request) (url.Values, *apiError) {
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalid("Content-Type must be application/x-www-form-urlencoded, got %q", req.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		return nil, invalid("Unable to read the request body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, invalid("Unable to parse the request body as a form")
	}
	return form, nil
}

// lookup finds or creates the reservation a route names, or says why not;
// the caller holds s.mu.
func (s *Server) lookup(rt route) (*Reservation, *apiError) {
	r, ok := s.reservations[rt.sid]
	if !ok {
		if s.registered {
			return nil, notFound(rt.path())
		}
		now := time.Now().UTC()
		r = &Reservation{Sid: rt.sid, WorkspaceSid: rt.workspace, Status: "pending", Created: now, Updated: now}
		s.reservations[rt.sid] = r
	}
	// A reservation lives under one workspace, one task and one worker;
	// naming another is a different (missing) resource.
	if r.WorkspaceSid != rt.workspace ||
		(rt.task != "" && r.TaskSid != "" && r.TaskSid != rt.task) ||
		(rt.worker != "" && r.WorkerSid != "" && r.WorkerSid != rt.worker) {
		return nil, notFound(rt.path())
	}
	if r.TaskSid == "" {
		r.TaskSid = rt.task
	}
	if r.WorkerSid == "" {
		r.WorkerSid = rt.worker
	}
	return r, nil
}

func (s *Server) fetch(w http.ResponseWriter, rt route) int {
	s.mu.Lock()
	r, e := s.lookup(rt)
	var body resource
	if e == nil {
		body = s.resource(*r, rt)
	}
	s.mu.Unlock()
	if e != nil {
		writeError(w, e)
		return e.Status
	}
	writeJSON(w, http.StatusOK, body)
	return http.StatusOK
}

// notPendingCodes are the documented "reservation must be Pending" errors of
// each instruction (Twilio error pages 40114, 40123, 40135, 40136). No code
// is documented for a ReservationStatus update of a non-pending reservation;
// the fake uses the generic 20001 there.
var notPendingCodes = map[string]int{
	groupCall:       40114,
	groupRedirect:   40123,
	groupDequeue:    40135,
	groupConference: 40136,
	groupStatus:     20001,
}

func (s *Server) update(w http.ResponseWriter, rt route, form url.Values) int {
	group, e := validateUpdate(form, rt.workerPath)
	if e != nil {
		writeError(w, e)
		return e.Status
	}
	s.mu.Lock()
	r, e := s.lookup(rt)
	var from string
	if e == nil {
		from = r.Status
		e = apply(r, group, form)
	}
	var body resource
	var after Reservation
	if e == nil {
		r.Updated = time.Now().UTC()
		body = s.resource(*r, rt)
		after = *r
	}
	s.mu.Unlock()
	if e != nil {
		writeError(w, e)
		return e.Status
	}
	writeJSON(w, http.StatusOK, body)
	s.emit(after, from) // events.go
	return http.StatusOK
}

// apply moves a reservation through an update; the caller holds s.mu.
func apply(r *Reservation, group string, form url.Values) *apiError {
	if group == groupSupervise {
		// Supervise joins a supervisor to a reservation already accepted
		// (errors 40146–40148); it leaves the status alone.
		if r.Status != "accepted" {
			return &apiError{Status: 400, Code: 40146, Message: fmt.Sprintf("Reservation %s is not currently in an Accepted state.", r.Sid)}
		}
		r.Instruction = group
		return nil
	}
	if group == groupStatus {
		to := form.Get("ReservationStatus")
		switch {
		case r.Status == "pending" && (to == "accepted" || to == "rejected"):
		case r.Status == "accepted" && (to == "wrapping" || to == "completed"):
		case r.Status == "wrapping" && to == "completed":
		case r.Status == "pending":
			return invalid("Reservation %s cannot be updated from pending to %s.", r.Sid, to)
		default:
			return notPending(r.Sid, group)
		}
		r.Status = to
		return nil
	}
	if r.Status != "pending" {
		return notPending(r.Sid, group)
	}
	r.Instruction = group
	// Dequeue and conference accept the reservation once the worker's leg
	// is connected; call and redirect accept it only when asked to
	// (CallAccept / RedirectAccept), otherwise the application accepts or
	// rejects it later and it stays pending.
	switch group {
	case groupDequeue, groupConference:
		r.Status = "accepted"
	case groupCall:
		if ok, _ := parseBool(form.Get("CallAccept")); ok {
			r.Status = "accepted"
		}
	case groupRedirect:
		if ok, _ := parseBool(form.Get("RedirectAccept")); ok {
			r.Status = "accepted"
		}
	}
	return nil
}

// notPending is TaskRouter's answer to an update of a reservation that has
// left the pending state, worded as Twilio words it (see
// github.com/twilio-labs/plugin-flex-outbound-dialpad/issues/31).
func notPending(sid, group string) *apiError {
	msg := fmt.Sprintf("Reservation %s is not currently in a Pending state.", sid)
	if group != groupStatus {
		msg = fmt.Sprintf("Unable to execute %s instruction. %s", strings.ToUpper(group[:1])+group[1:], msg)
	}
	return &apiError{Status: 400, Code: notPendingCodes[group], Message: msg}
}

// resource is taskrouter.v1.workspace.task.task_reservation (and the
// identical worker_reservation) as JSON.
type resource struct {
	AccountSid        string            `json:"account_sid"`
	DateCreated       string            `json:"date_created"`
	DateUpdated       string            `json:"date_updated"`
	ReservationStatus string            `json:"reservation_status"`
	Sid               string            `json:"sid"`
	TaskSid           *string           `json:"task_sid"`
	WorkerName        *string           `json:"worker_name"`
	WorkerSid         *string           `json:"worker_sid"`
	WorkspaceSid      string            `json:"workspace_sid"`
	URL               string            `json:"url"`
	Links             map[string]string `json:"links"`
}

func (s *Server) resource(r Reservation, rt route) resource {
	ws := s.URL + "/v1/Workspaces/" + r.WorkspaceSid
	res := resource{
		AccountSid:        s.AccountSid,
		DateCreated:       r.Created.UTC().Format(time.RFC3339),
		DateUpdated:       r.Updated.UTC().Format(time.RFC3339),
		ReservationStatus: r.Status,
		Sid:               r.Sid,
		TaskSid:           nullable(r.TaskSid),
		WorkerName:        nullable(r.WorkerName),
		WorkerSid:         nullable(r.WorkerSid),
		WorkspaceSid:      r.WorkspaceSid,
		URL:               s.URL + rt.path(),
		Links:             map[string]string{"workspace": ws},
	}
	if r.TaskSid != "" {
		res.Links["task"] = ws + "/Tasks/" + r.TaskSid
	}
	if r.WorkerSid != "" {
		res.Links["worker"] = ws + "/Workers/" + r.WorkerSid
	}
	return res
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vals := range v {
		out[k] = append([]string(nil), vals...)
	}
	return out
}
