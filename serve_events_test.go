package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

// eventsServe is serve against the fake TaskRouter, whose Workspace's EventCallbackUrl is
// serve's --events-path, so that it sends reservist its events.
func eventsServe(t *testing.T, rules string, args ...string) (*served, *taskroutertest.Server) {
	t.Helper()
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	s := startServe(t, rules, credentials(fake), append([]string{"--twilio-base-url", fake.URL}, args...)...)
	fake.SetEventCallbackURL(s.url + "/taskrouter/events")
	t.Cleanup(fake.Close) // after serve stops: cleanups run last first
	return s, fake
}

// sendEvent has the fake TaskRouter send an event and wants it answered 204.
func sendEvent(t *testing.T, fake *taskroutertest.Server, e taskroutertest.Event) {
	t.Helper()
	sent, err := fake.SendEvent(context.Background(), e)
	if err != nil || sent.Err != nil || sent.Status != http.StatusNoContent || sent.ContentType != "application/json" {
		t.Fatalf("event %s: %+v, %v; want 204 application/json", e.Type, sent, err)
	}
}

// metricValue is the sum of the series on serve's /metrics that have labels, 0 when there
// are none.
func metricValue(t *testing.T, s *served, name string, labels map[string]string) float64 {
	t.Helper()
	_, body := get(t, s.admin+"/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	f, ok := fams[name]
	if !ok {
		return 0
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

// delayedCallback is a callback for reservation n of task task whose accept is due 4s after
// it (the delayed fixture's later rule).
func delayedCallback(n, task uint64) url.Values {
	cb := callback(n, `{"kind":"later"}`)
	cb.Set("TaskSid", testkit.Sid("WT", task))
	return cb
}

// TestServeEventRescinded: a reservation rescinded while its delayed accept waits is never
// accepted by REST; another reservation's, due after it, is.
func TestServeEventRescinded(t *testing.T) {
	s, fake := eventsServe(t, testkit.Rules(t, "delayed"))
	rescinded, control := testkit.Sid("WR", 1), testkit.Sid("WR", 2)
	for _, cb := range []url.Values{delayedCallback(1, 1), delayedCallback(2, 2)} {
		if code, body := s.post(t, "/assignment_callback", cb); code != 200 || body != "{}" {
			t.Fatalf("callback = %d %s; want 200 {}", code, body)
		}
	}
	sendEvent(t, fake, taskroutertest.Event{Type: "reservation.rescinded", TaskSid: testkit.Sid("WT", 1), ReservationSid: rescinded, WorkerSid: testkit.WorkerSid})

	// The control was queued after the rescinded one: once it is sent, the rescinded one
	// would have been too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := fake.WaitRequests(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, r := range fake.Requests() {
		if r.ReservationSid != control {
			t.Errorf("REST call for %s (%s); want only %s's", r.ReservationSid, r.Path, control)
		}
	}
	if got := metricValue(t, s, "reservist_rest_calls_total", map[string]string{"result": "superseded"}); got != 1 {
		t.Errorf("reservist_rest_calls_total{result=superseded} = %v; want 1", got)
	}
}

// TestServeEventTaskCanceled: task.canceled ends every pending action of the task — both of
// its reservations' — and no other task's.
func TestServeEventTaskCanceled(t *testing.T) {
	s, fake := eventsServe(t, testkit.Rules(t, "delayed"))
	for _, cb := range []url.Values{delayedCallback(1, 7), delayedCallback(2, 7), delayedCallback(3, 8)} {
		if code, body := s.post(t, "/assignment_callback", cb); code != 200 || body != "{}" {
			t.Fatalf("callback = %d %s; want 200 {}", code, body)
		}
	}
	sendEvent(t, fake, taskroutertest.Event{Type: "task.canceled", TaskSid: testkit.Sid("WT", 7)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := fake.WaitRequests(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, r := range fake.Requests() {
		if r.ReservationSid != testkit.Sid("WR", 3) {
			t.Errorf("REST call for %s; want only %s's (task 8)", r.ReservationSid, testkit.Sid("WR", 3))
		}
	}
	if got := metricValue(t, s, "reservist_rest_calls_total", map[string]string{"result": "superseded"}); got != 2 {
		t.Errorf("reservist_rest_calls_total{result=superseded} = %v; want 2", got)
	}
}

// TestServeEventOutcomes: outcomes are counted under the rule that decided each
// reservation — a synchronous answer, and a REST accept whose reservation.accepted the fake
// TaskRouter sends by itself — while completed, wrapup and unknown types count none.
func TestServeEventOutcomes(t *testing.T) {
	s, fake := eventsServe(t, testkit.Rules(t, "delayed"))
	// "now" accepts by REST at once; the fake then sends reservation.accepted.
	if code, body := s.post(t, "/assignment_callback", callback(1, `{"kind":"now"}`)); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s", code, body)
	}
	// Nothing matches: the default (defer), answered {}; TaskRouter times it out.
	if code, body := s.post(t, "/assignment_callback", callback(2, `{"kind":"other"}`)); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, err := fake.WaitEvents(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Event.Type != "reservation.accepted" || evs[0].Status != http.StatusNoContent {
		t.Fatalf("the fake's event after the REST accept: %s answered %d; want reservation.accepted answered 204", evs[0].Event.Type, evs[0].Status)
	}
	sendEvent(t, fake, taskroutertest.Event{Type: "reservation.timeout", TaskSid: testkit.Sid("WT", 2), ReservationSid: testkit.Sid("WR", 2), WorkerSid: testkit.WorkerSid})
	sendEvent(t, fake, taskroutertest.Event{Type: "reservation.completed", TaskSid: testkit.Sid("WT", 1), ReservationSid: testkit.Sid("WR", 1), WorkerSid: testkit.WorkerSid})
	sendEvent(t, fake, taskroutertest.Event{Type: "worker.activity.update", WorkerSid: testkit.WorkerSid})
	sendEvent(t, fake, taskroutertest.Event{Type: "reservation.made-up", ReservationSid: testkit.Sid("WR", 1)})

	series := func(rule, outcome string) float64 {
		return metricValue(t, s, "reservist_reservation_outcomes_total", map[string]string{"rule": rule, "outcome": outcome})
	}
	eventually(t, "both outcomes counted", func() bool { return series("now", "accepted") == 1 && series("default", "timeout") == 1 })
	_, body := get(t, s.admin+"/metrics")
	if n := strings.Count(body, "reservist_reservation_outcomes_total{"); n != 2 {
		t.Errorf("/metrics has %d outcome series; want 2:\n%s", n, grepLines(body, "reservist_reservation_outcomes_total"))
	}
	// The playground and /rules show them too, since the rules were loaded.
	_, rulesJSON := get(t, s.admin+"/rules")
	if !strings.Contains(rulesJSON, `"outcomes":{`) || !strings.Contains(rulesJSON, `"default":{"accepted":0,"rejected":0,"timeout":1,`) {
		t.Errorf("/rules lacks the outcomes: %s", rulesJSON)
	}
	if _, page := get(t, s.admin+"/"); !strings.Contains(page, `<span class="outcome timeout">timeout 1</span>`) {
		t.Errorf("the playground does not show the timeout:\n%s", grepLines(page, "outcome"))
	}
	if got := metricValue(t, s, "reservist_events_total", map[string]string{"type": "other", "result": "ignored"}); got != 2 {
		t.Errorf("reservist_events_total{type=other,result=ignored} = %v; want 2 (the worker event and the made-up type)", got)
	}
	if strings.Contains(s.log.String(), "client:alice") {
		t.Error("an attribute reached the log")
	}
}

// TestServeEventForbidden: an unsigned or wrongly signed event is refused with 403 and ends
// nothing: the delayed accept is still carried out.
func TestServeEventForbidden(t *testing.T) {
	s, fake := eventsServe(t, testkit.Rules(t, "delayed"))
	if code, body := s.post(t, "/assignment_callback", delayedCallback(1, 1)); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s", code, body)
	}
	ev := taskroutertest.Event{Type: "reservation.rescinded", TaskSid: testkit.Sid("WT", 1), ReservationSid: testkit.Sid("WR", 1)}.Form(fake.AccountSid)
	u := s.url + "/taskrouter/events"
	for _, token := range []string{"", "not-the-auth-token"} {
		if code, body := testkit.Post(t, u, token, ev); code != http.StatusForbidden || !strings.Contains(body, `"error"`) {
			t.Errorf("event signed with %q = %d %s; want 403 with a JSON error", token, code, body)
		}
	}
	// Signed for another URL: a callback path's.
	req, _ := http.NewRequest("POST", u, strings.NewReader(ev.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", testkit.Sign(fake.AuthToken, s.url+"/assignment_callback", ev))
	if code, _ := do(t, req); code != http.StatusForbidden {
		t.Errorf("event signed for another URL = %d; want 403", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reqs, err := fake.WaitRequests(ctx, 1)
	if err != nil || reqs[0].ReservationSid != testkit.Sid("WR", 1) {
		t.Fatalf("the accept after refused events: %v, %v; want it carried out", reqs, err)
	}
	if got := metricValue(t, s, "reservist_events_total", map[string]string{"result": "forbidden"}); got != 3 {
		t.Errorf("reservist_events_total{result=forbidden} = %v; want 3", got)
	}
	if got := metricValue(t, s, "reservist_rest_calls_total", map[string]string{"result": "superseded"}); got != 0 {
		t.Errorf("reservist_rest_calls_total{result=superseded} = %v; want 0", got)
	}
}

// TestServeEventsOff: --events-path off leaves the path unserved.
func TestServeEventsOff(t *testing.T) {
	s, fake := eventsServe(t, testkit.Rules(t, "delayed"), "--events-path", "off")
	sent, err := fake.SendEvent(context.Background(), taskroutertest.Event{Type: "task.canceled", TaskSid: testkit.Sid("WT", 1)})
	if err != nil || sent.Status != http.StatusNotFound {
		t.Errorf("an event with --events-path off: %+v, %v; want 404", sent, err)
	}
	_ = s
}

// TestServeEventsSharedOutbox: two replicas on one PostgreSQL outbox. Reservations decided
// by A have their outcomes counted by B, which receives the events: one that B hears of
// because the fake TaskRouter sends reservation.accepted after A's REST accept, one that
// times out.
func TestServeEventsSharedOutbox(t *testing.T) {
	db := pgtest.Start(t).NewDatabase(t)
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	args := []string{"--twilio-base-url", fake.URL, "--outbox", db}
	a := startServe(t, testkit.Rules(t, "delayed"), credentials(fake), args...)
	b := startServe(t, testkit.Rules(t, "delayed"), credentials(fake), args...)
	fake.SetEventCallbackURL(b.url + "/taskrouter/events")
	t.Cleanup(fake.Close)

	if code, body := a.post(t, "/assignment_callback", callback(1, `{"kind":"now"}`)); code != 200 || body != "{}" {
		t.Fatalf("callback to A = %d %s", code, body)
	}
	if code, body := a.post(t, "/assignment_callback", callback(2, `{"kind":"other"}`)); code != 200 || body != "{}" {
		t.Fatalf("callback to A = %d %s", code, body)
	}
	sendEvent(t, fake, taskroutertest.Event{Type: "reservation.timeout", TaskSid: testkit.Sid("WT", 2), ReservationSid: testkit.Sid("WR", 2), WorkerSid: testkit.WorkerSid})
	series := func(s *served, rule, outcome string) float64 {
		return metricValue(t, s, "reservist_reservation_outcomes_total", map[string]string{"rule": rule, "outcome": outcome})
	}
	eventually(t, "B counts the outcomes of A's decisions", func() bool {
		return series(b, "now", "accepted") == 1 && series(b, "default", "timeout") == 1
	})
	if got := series(a, "now", "accepted") + series(a, "default", "timeout"); got != 0 {
		t.Errorf("A counted %v outcomes; want 0: the events went to B", got)
	}
}
