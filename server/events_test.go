package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

const eventsPath = "/taskrouter/events"

// supersessions records what the events handler asks the outbox to end.
type supersessions struct {
	mu   sync.Mutex
	got  []string // "reservation|task|event"
	n    int
	err  error
	wait chan struct{} // if set, Supersede waits for it
}

func (s *supersessions) supersede(ctx context.Context, reservationSid, taskSid, event string) (int, error) {
	if s.wait != nil {
		<-s.wait
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, reservationSid+"|"+taskSid+"|"+event)
	return s.n, s.err
}

func (s *supersessions) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// event is an Event callback as TaskRouter sends it, with attributes that must never reach
// a log.
func event(typ string, n uint64) url.Values {
	return taskroutertest.Event{
		Type: typ, TaskSid: testkit.Sid("WT", n), ReservationSid: testkit.Sid("WR", n), WorkerSid: testkit.WorkerSid,
		TaskAttributes: `{"secret_note":"do-not-log-me"}`, WorkerAttributes: `{"secret_note":"do-not-log-me"}`,
	}.Form(testkit.AccountSid)
}

func eventsHarness(t *testing.T, sup *supersessions, tracker *outcomes.Tracker) *harness {
	return newHarness(t, func(o *Options) {
		o.EventsPath = eventsPath
		o.Supersede = sup.supersede
		o.Outcomes = tracker
	})
}

func wantNoContent(t *testing.T, resp *http.Response) {
	t.Helper()
	if got := body(t, resp); resp.StatusCode != http.StatusNoContent || got != "" {
		t.Errorf("%s = %d %q; want 204 and no body", resp.Request.URL.Path, resp.StatusCode, got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q; want application/json, as TaskRouter expects", ct)
	}
}

// TestEvents: each event type that ends actions asks the outbox to end the reservation's,
// or the task's; every other type is answered 204 and ignored.
func TestEvents(t *testing.T) {
	sup := &supersessions{n: 1}
	h := eventsHarness(t, sup, nil)
	wr, wt := testkit.Sid("WR", 1), testkit.Sid("WT", 1)
	types := []string{
		"reservation.accepted", "reservation.rejected", "reservation.timeout", "reservation.canceled",
		"reservation.rescinded", "reservation.completed", "reservation.wrapup",
		"task.canceled", "task.deleted", "task.completed",
		"reservation.created", "task.created", "worker.activity.update", "task-queue.entered", "something.new",
	}
	var want []string
	for _, typ := range types {
		wantNoContent(t, h.post(t, eventsPath, event(typ, 1)))
		switch {
		case strings.HasPrefix(typ, "reservation.") && typ != "reservation.created":
			want = append(want, wr+"||"+typ)
		case typ == "task.canceled" || typ == "task.deleted" || typ == "task.completed":
			want = append(want, "|"+wt+"|"+typ)
		}
	}
	if got := sup.list(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("supersessions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := testutil.ToFloat64(h.metrics.events.WithLabelValues("other", EventIgnored)); got != 5 {
		t.Errorf("events{type=other,result=ignored} = %v; want 5", got)
	}
	if got := testutil.ToFloat64(h.metrics.events.WithLabelValues("task.canceled", EventHandled)); got != 1 {
		t.Errorf("events{type=task.canceled,result=handled} = %v; want 1", got)
	}
	if strings.Contains(h.log.String(), "do-not-log-me") {
		t.Errorf("an attribute reached the log:\n%s", h.log)
	}
}

// TestEventsRefused: events are checked as callbacks are — method, size, form, signature —
// and a refused one ends nothing and counts nothing.
func TestEventsRefused(t *testing.T) {
	sup := &supersessions{}
	tracker := outcomes.New(outcomes.Options{})
	h := eventsHarness(t, sup, tracker)
	tracker.Record(testkit.Sid("WR", 1), "voice", time.Now())
	form := event("reservation.timeout", 1)
	send := func(method, ct, sig, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, h.srv.URL+eventsPath, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if sig != "" {
			req.Header.Set(SignatureHeader, sig)
		}
		return h.do(t, req)
	}
	const formType = "application/x-www-form-urlencoded"
	good := testkit.Sign(h.token, h.srv.URL+eventsPath, form)
	resp := send("GET", "", "", "")
	wantError(t, resp, http.StatusMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); allow != "POST" {
		t.Errorf("405 Allow = %q; want POST", allow)
	}
	wantError(t, send("POST", formType, good, strings.Repeat("a", MaxBody+1)), http.StatusRequestEntityTooLarge)
	wantError(t, send("POST", "application/json", good, form.Encode()), http.StatusBadRequest)
	wantError(t, send("POST", formType, good, "a=%zz"), http.StatusBadRequest)
	wantError(t, send("POST", formType, "", form.Encode()), http.StatusForbidden)
	wrongToken := testkit.Sign("another-token", h.srv.URL+eventsPath, form)
	wantError(t, send("POST", formType, wrongToken, form.Encode()), http.StatusForbidden)
	otherURL := testkit.Sign(h.token, h.srv.URL+"/assignment_callback", form)
	wantError(t, send("POST", formType, otherURL, form.Encode()), http.StatusForbidden)
	tampered := event("reservation.timeout", 1)
	tampered.Set("ReservationSid", testkit.Sid("WR", 2))
	wantError(t, send("POST", formType, good, tampered.Encode()), http.StatusForbidden)

	if got := sup.list(); len(got) != 0 {
		t.Errorf("refused events superseded %v", got)
	}
	if got := testutil.ToFloat64(h.metrics.events.WithLabelValues("other", EventForbidden)); got != 4 {
		t.Errorf("events{result=forbidden} = %v; want 4", got)
	}
	if got := testutil.ToFloat64(h.metrics.events.WithLabelValues("other", EventBadRequest)); got != 4 {
		t.Errorf("events{result=bad_request} = %v; want 4", got)
	}
	wantNoContent(t, send("POST", formType, good, form.Encode()))
	if got := sup.list(); len(got) != 1 {
		t.Errorf("the signed event superseded %v; want one", got)
	}
	if strings.Contains(h.log.String(), "do-not-log-me") {
		t.Errorf("an attribute reached the log:\n%s", h.log)
	}
	forbidden := h.log.lines(t, "event callback signature check failed")
	if len(forbidden) != 4 || forbidden[0]["url"] != h.srv.URL+eventsPath {
		t.Errorf("signature failures logged: %v; want 4 naming the URL", forbidden)
	}
}

// TestEventsOutcomes: reservation outcomes are counted under the rule that decided the
// reservation, through a real callback; completed and wrapup are not outcomes.
func TestEventsOutcomes(t *testing.T) {
	tracker := outcomes.New(outcomes.Options{})
	h := eventsHarness(t, &supersessions{}, tracker)
	if err := tracker.Register(h.registry); err != nil {
		t.Fatal(err)
	}
	cb := callbackParams(`{"channel":"chat"}`)
	wantJSON(t, h.post(t, "/assignment_callback", cb), 200, `{"instruction":"accept"}`)
	rule := "chat" // the server fixture's rule for chat tasks
	for _, typ := range []string{"reservation.accepted", "reservation.wrapup", "reservation.completed", "reservation.accepted"} {
		wantNoContent(t, h.post(t, eventsPath, event(typ, 1)))
	}
	want := `
# HELP reservist_reservation_outcomes_total Reservations by the rule that decided them and how they ended, from TaskRouter's Event callbacks: accepted, rejected, timeout, canceled, rescinded.
# TYPE reservist_reservation_outcomes_total counter
reservist_reservation_outcomes_total{outcome="accepted",rule="` + rule + `"} 1
`
	if err := testutil.GatherAndCompare(h.registry, strings.NewReader(want), "reservist_reservation_outcomes_total"); err != nil {
		t.Error(err)
	}
}

// TestEventsSupersedeFails: an outbox that cannot end the actions is logged, and the event
// is still answered 204: the action ends as superseded when TaskRouter refuses it.
func TestEventsSupersedeFails(t *testing.T) {
	sup := &supersessions{err: errors.New("disk full")}
	h := eventsHarness(t, sup, nil)
	wantNoContent(t, h.post(t, eventsPath, event("task.canceled", 3)))
	lines := h.log.lines(t, "event callback: the outbox could not end the pending actions it names; they end when TaskRouter refuses them")
	if len(lines) != 1 || lines[0]["task_sid"] != testkit.Sid("WT", 3) || lines[0]["error"] != "disk full" {
		t.Errorf("log lines %v; want one naming the task and the error", lines)
	}
}

// TestEventsOff: without an events path, the path is not found.
func TestEventsOff(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.post(t, eventsPath, event("task.canceled", 1)), http.StatusNotFound)
}

// TestEventsOddSids: an event whose SID is not of the right shape ends nothing, and the
// value is bounded in the log.
func TestEventsOddSids(t *testing.T) {
	sup := &supersessions{}
	h := eventsHarness(t, sup, nil)
	f := event("reservation.rescinded", 1)
	f.Set("ReservationSid", strings.Repeat("W", 100_000))
	wantNoContent(t, h.post(t, eventsPath, f))
	g := event("task.deleted", 1)
	g.Del("TaskSid")
	g.Set("ResourceSid", testkit.Sid("WT", 5)) // a task event names its task as the resource
	wantNoContent(t, h.post(t, eventsPath, g))
	if got := sup.list(); len(got) != 1 || got[0] != "|"+testkit.Sid("WT", 5)+"|task.deleted" {
		t.Errorf("supersessions %v; want only the task named by ResourceSid", got)
	}
	if len(h.log.String()) > 10_000 {
		t.Errorf("the log holds %d bytes after an oversized SID", len(h.log.String()))
	}
}
