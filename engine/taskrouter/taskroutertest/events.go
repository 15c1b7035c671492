package taskroutertest

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Event is one TaskRouter Event callback: what happened to a reservation, a task or a
// worker. TaskRouter POSTs it, form-encoded and signed like an assignment callback, to the
// Workspace's EventCallbackUrl, and expects 204 within 15 seconds.
type Event struct {
	// Type is the EventType, e.g. reservation.accepted or task.canceled.
	Type string
	// WorkspaceSid defaults to DefaultWorkspaceSid.
	WorkspaceSid   string
	TaskSid        string
	ReservationSid string
	WorkerSid      string
	// TaskAttributes and WorkerAttributes are JSON strings, sent as TaskRouter sends them
	// with task and reservation events; empty sends "{}".
	TaskAttributes   string
	WorkerAttributes string
	// Description is the EventDescription; empty makes one from the type.
	Description string
	// Time is when it happened; zero is when it is sent.
	Time time.Time
	// Extra are further parameters, sent as they are (TaskRouter adds parameters without
	// notice).
	Extra url.Values
}

// DefaultWorkspaceSid is the workspace of events that name none.
const DefaultWorkspaceSid = "WS00000000000000000000000000000001"

// resourceOf is the ResourceType (capitalized, as TaskRouter sends it) and ResourceSid of
// an event, by its type's prefix.
func (e Event) resourceOf() (string, string) {
	kind, _, _ := strings.Cut(e.Type, ".")
	switch kind {
	case "reservation":
		return "Reservation", e.ReservationSid
	case "task":
		return "Task", e.TaskSid
	case "worker":
		return "Worker", e.WorkerSid
	}
	return kind, ""
}

// eventSeq numbers the events' own SIDs (EV…).
var eventSeq atomic.Uint64

// Form is the event's parameters as TaskRouter sends them for accountSid: the ones every
// event has (EventType, AccountSid, WorkspaceSid, WorkspaceName, ResourceType, ResourceSid,
// Timestamp, TimestampMs, EventDescription, Sid) and those of its resource: a task's
// (TaskSid, TaskAttributes, TaskAge, TaskPriority, TaskAssignmentStatus, TaskQueueSid,
// WorkflowSid, …), a reservation's (ReservationSid with its task's and worker's), a
// worker's (WorkerSid, WorkerAttributes, WorkerName, WorkerActivityName, …).
func (e Event) Form(accountSid string) url.Values {
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	ws := e.WorkspaceSid
	if ws == "" {
		ws = DefaultWorkspaceSid
	}
	typ, sid := e.resourceOf()
	desc := e.Description
	if desc == "" {
		desc = fmt.Sprintf("%s %s: %s", typ, sid, e.Type)
	}
	f := url.Values{
		"EventType":        {e.Type},
		"AccountSid":       {accountSid},
		"WorkspaceSid":     {ws},
		"WorkspaceName":    {"reservist tests"},
		"ResourceType":     {typ},
		"ResourceSid":      {sid},
		"Timestamp":        {strconv.FormatInt(at.Unix(), 10)},
		"TimestampMs":      {strconv.FormatInt(at.UnixMilli(), 10)},
		"EventDescription": {desc},
		"Sid":              {NewSid("EV", eventSeq.Add(1))},
	}
	attrs := func(s string) string {
		if s == "" {
			return "{}"
		}
		return s
	}
	if e.TaskSid != "" {
		f.Set("TaskSid", e.TaskSid)
		f.Set("TaskAttributes", attrs(e.TaskAttributes))
		f.Set("TaskAge", "5")
		f.Set("TaskPriority", "0")
		f.Set("TaskAssignmentStatus", taskStatus(e.Type))
		f.Set("TaskQueueSid", NewSid("WQ", 1))
		f.Set("TaskQueueName", "Everyone")
		f.Set("WorkflowSid", NewSid("WW", 1))
		f.Set("WorkflowName", "Default")
		f.Set("TaskChannelUniqueName", "default")
	}
	if e.ReservationSid != "" {
		f.Set("ReservationSid", e.ReservationSid)
	}
	if e.WorkerSid != "" {
		f.Set("WorkerSid", e.WorkerSid)
		f.Set("WorkerName", "alice")
		f.Set("WorkerAttributes", attrs(e.WorkerAttributes))
		f.Set("WorkerActivitySid", NewSid("WA", 1))
		f.Set("WorkerActivityName", "Available")
	}
	for k, vs := range e.Extra {
		f[k] = slices.Clone(vs)
	}
	return f
}

// taskStatus is the task's assignment status after an event of type typ.
func taskStatus(typ string) string {
	switch typ {
	case "reservation.accepted":
		return "assigned"
	case "reservation.wrapup", "task.wrapup":
		return "wrapping"
	case "reservation.completed", "task.completed":
		return "completed"
	case "task.canceled":
		return "canceled"
	case "reservation.created":
		return "reserved"
	}
	return "pending"
}

// SentEvent is one Event callback the fake sent, with the answer it got.
type SentEvent struct {
	Event Event
	Form  url.Values
	// Status is the HTTP status of the answer, 0 when none came (Err says why).
	Status      int
	ContentType string
	Err         error
	Time        time.Time
}

// SetEventCallbackURL sets the Workspace's EventCallbackUrl: from then on, reservation
// updates made through the REST API send their events there (reservation.accepted,
// .rejected, .wrapup, .completed). Empty sends none.
func (s *Server) SetEventCallbackURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventURL = u
}

// eventCallbackURL is the Workspace's EventCallbackUrl, "" when unset.
func (s *Server) eventCallbackURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventURL
}

// SendEvent sends an Event callback to the EventCallbackUrl, signed with the auth token as
// TaskRouter signs it (X-Twilio-Signature over the URL and the sorted parameters), and
// returns once it is answered.
func (s *Server) SendEvent(ctx context.Context, e Event) (SentEvent, error) {
	u := s.eventCallbackURL()
	if u == "" {
		return SentEvent{}, fmt.Errorf("taskroutertest: no EventCallbackUrl set (SetEventCallbackURL)")
	}
	return s.sendEvent(ctx, u, e), nil
}

func (s *Server) sendEvent(ctx context.Context, u string, e Event) SentEvent {
	form := e.Form(s.AccountSid)
	sent := SentEvent{Event: e, Form: form, Time: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		sent.Err = err
		return s.recordEvent(sent)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", Signature(s.AuthToken, u, form))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	resp, err := s.eventClient.Do(req)
	if err != nil {
		sent.Err = err
		return s.recordEvent(sent)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	sent.Status, sent.ContentType = resp.StatusCode, resp.Header.Get("Content-Type")
	return s.recordEvent(sent)
}

func (s *Server) recordEvent(e SentEvent) SentEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	s.notify()
	return e
}

// Events returns every Event callback sent so far, in the order they were answered.
func (s *Server) Events() []SentEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentEvent, len(s.events))
	for i, e := range s.events {
		e.Form = cloneValues(e.Form)
		out[i] = e
	}
	return out
}

// WaitEvents blocks until at least n Event callbacks have been answered (or failed), or
// ctx is done, and returns them.
func (s *Server) WaitEvents(ctx context.Context, n int) ([]SentEvent, error) {
	for {
		s.mu.Lock()
		have, changed := len(s.events), s.changed
		s.mu.Unlock()
		if have >= n {
			return s.Events(), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Events(), fmt.Errorf("waiting for %d event callbacks, have %d: %w", n, have, ctx.Err())
		}
	}
}

// Signature is X-Twilio-Signature for a POST to rawURL with params, as twilio-go's
// RequestValidator computes it: HMAC-SHA1 with the auth token over the URL followed by each
// parameter's name and value, sorted by name, in base64.
func Signature(authToken, rawURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(rawURL)
	for _, k := range keys {
		b.WriteString(k)
		if vs := params[k]; len(vs) > 0 {
			b.WriteString(vs[0])
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// eventFor is the event TaskRouter sends when an update moves r from status from; "" when
// the status did not change.
func eventFor(r Reservation, from string) string {
	if r.Status == from {
		return ""
	}
	switch r.Status {
	case "accepted":
		return "reservation.accepted"
	case "rejected":
		return "reservation.rejected"
	case "wrapping":
		return "reservation.wrapup"
	case "completed":
		return "reservation.completed"
	}
	return ""
}

// emit sends, apart from the REST answer as TaskRouter does, the event of a reservation's
// change of status.
func (s *Server) emit(r Reservation, from string) {
	typ := eventFor(r, from)
	u := s.eventCallbackURL()
	if typ == "" || u == "" {
		return
	}
	e := Event{Type: typ, WorkspaceSid: r.WorkspaceSid, TaskSid: r.TaskSid, ReservationSid: r.Sid, WorkerSid: r.WorkerSid}
	s.emitting.Add(1)
	go func() {
		defer s.emitting.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // TaskRouter's patience
		defer cancel()
		s.sendEvent(ctx, u, e)
	}()
}
