package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/testkit"
)

func TestJudge(t *testing.T) {
	const wr = "WR00000000000000000000000000000001"
	twilio := func(status, code int, msg string) error {
		return &outbox.HTTPError{StatusCode: status, Code: code, Message: msg}
	}
	for _, tt := range []struct {
		name string
		err  error
		want outbox.Verdict
	}{
		{"network error", errors.New("connection reset by peer"), outbox.Retry},
		{"429", twilio(429, 20429, "Too Many Requests"), outbox.Retry},
		{"500", twilio(500, 20500, "Internal Server Error"), outbox.Retry},
		{"503 from a proxy", twilio(503, 0, "Service Unavailable"), outbox.Retry},
		{"invalid params", fmt.Errorf("parameter X: %w", outbox.ErrInvalidParams), outbox.Final},
		{"401", twilio(401, 20003, "Authenticate"), outbox.Final},
		{"403", twilio(403, 20403, "Forbidden"), outbox.Final},
		{"404", twilio(404, 20404, "The requested resource was not found"), outbox.Final},
		// The wordings TaskRouter uses for a reservation that has left pending.
		{"20001 not currently pending", twilio(400, 20001, "Reservation "+wr+" is not currently in a Pending state."), outbox.NotPending},
		{"20001 not in expected state", twilio(400, 20001, "Reservation "+wr+" not in expected state [pending] and cannot be updated to [onHold]"), outbox.NotPending},
		{"20001 no longer pending", twilio(400, 20001, "Reservation "+wr+" is no longer pending"), outbox.NotPending},
		{"20001 conference", twilio(400, 20001, "Unable to execute Conference instruction. Reservation "+wr+" is not currently in a Pending state."), outbox.NotPending},
		// Other 20001s stay final, pending in their text or not.
		{"20001 invalid parameter", twilio(400, 20001, "Invalid parameter"), outbox.Final},
		{"20001 cannot be updated from pending", twilio(400, 20001, "Reservation "+wr+" cannot be updated from pending to wrapping."), outbox.Final},
		{"20001 pending required elsewhere", twilio(400, 20001, "CallTo is not a valid phone number. The reservation is pending."), outbox.Final},
		// One code per instruction, whatever the message.
		{"40114 call", twilio(400, 40114, "Reservation must be Pending"), outbox.NotPending},
		{"40123 redirect", twilio(400, 40123, ""), outbox.NotPending},
		{"40135 dequeue", twilio(400, 40135, ""), outbox.NotPending},
		{"40136 conference", twilio(400, 40136, ""), outbox.NotPending},
		{"40144 conference no longer pending", twilio(400, 40144, "no longer Pending"), outbox.NotPending},
		{"40146 not accepted", twilio(400, 40146, "Reservation "+wr+" is not currently in an Accepted state."), outbox.Final},
		{"40140 no call_sid", twilio(400, 40140, ""), outbox.Final},
		// The codes mean not pending only on a 400.
		{"40114 on a 404", twilio(404, 40114, ""), outbox.Final},
		{"wrapped", fmt.Errorf("send: %w", twilio(400, 40136, "")), outbox.NotPending},
	} {
		if got := outbox.Judge(tt.err); got != tt.want {
			t.Errorf("%s: Judge(%v) = %v; want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// callCounts reads reservist_rest_calls_total as result/status_class → value.
func callCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "reservist_rest_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[label(m, "result")+"/"+label(m, "status_class")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Each outcome of Try is counted under its result and the status class of the answer, and
// the series an alert selects are there at zero before anything happens.
func TestCallsByResultAndStatusClass(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := outbox.NewMetrics()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	zero := callCounts(t, reg)
	for _, want := range []string{"ok/2xx", "retry/5xx", "retry/4xx", "retry/none", "final_error/4xx", "final_error/none",
		"superseded/4xx", "superseded/none", "abandoned/none", "dry_run/none"} {
		if v, ok := zero[want]; !ok || v != 0 {
			t.Errorf("before any call, %s = %v (present %v); want 0, present", want, v, ok)
		}
	}

	notPending := &outbox.HTTPError{StatusCode: 400, Code: 40136, Message: "Reservation must be Pending"}
	h := newGate(nil, status(503, 0), errors.New("connection refused"), status(429, 0), notPending,
		&outbox.HTTPError{StatusCode: 404, Code: 20404, Message: "not found"})
	c := outbox.NewCarrier(outbox.CarrierOptions{Sender: h.sender, Clock: h.clock, Metrics: m, BreakerThreshold: 100})
	want := map[string]float64{}
	for k := range zero {
		want[k] = 0
	}
	for n, w := range []struct {
		outcome outbox.Outcome
		series  string
	}{
		{outbox.Sent, "ok/2xx"},
		{outbox.Retried, "retry/5xx"},
		{outbox.Retried, "retry/none"},
		{outbox.Retried, "retry/4xx"},
		{outbox.Superseded, "superseded/4xx"},
		{outbox.Failed, "final_error/4xx"},
	} {
		h.clock.advance(time.Minute) // past any pause the last answer set
		var kept outbox.Step
		got := c.Try(context.Background(), h.action(uint64(n+1)), 0, func(s outbox.Step) { kept = s })
		if got.Outcome != w.outcome || kept.Outcome != w.outcome {
			t.Errorf("attempt %d: Try = %v (kept %v); want %v", n+1, got.Outcome, kept.Outcome, w.outcome)
		}
		want[w.series]++
	}
	c.Supersede(h.action(9), "reservation.rescinded", func(outbox.Step) {})
	want["superseded/none"]++
	got := callCounts(t, reg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v; want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v; want exactly %v", got, want)
	}
}

// A not-pending 400 and an Event callback's supersession are logged at info, never as
// errors, with Twilio's code or the event type.
func TestSupersededLoggedAtInfo(t *testing.T) {
	logs := &testkit.LogBuffer{}
	h := newGate(&outbox.HTTPError{StatusCode: 400, Code: 20001, Message: "Reservation WR00000000000000000000000000000001 is not currently in a Pending state."})
	c := outbox.NewCarrier(outbox.CarrierOptions{Sender: h.sender, Clock: h.clock,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if s := c.Try(context.Background(), h.action(1), 0, func(outbox.Step) {}); s.Outcome != outbox.Superseded || !s.Outcome.Ends() {
		t.Fatalf("Try = %v (ends %v); want superseded, which ends the action", s.Outcome, s.Outcome.Ends())
	}
	c.Supersede(h.action(2), "task.canceled", func(outbox.Step) {})
	recs := logs.Records("outbox action superseded")
	if len(recs) != 2 {
		t.Fatalf("%d superseded lines; want 2:\n%s", len(recs), logs)
	}
	if recs[0]["level"] != "INFO" || recs[0]["twilio_code"] != float64(20001) || recs[0]["status"] != float64(400) {
		t.Errorf("the 400's line = %v; want INFO with status 400, twilio_code 20001", recs[0])
	}
	if recs[1]["level"] != "INFO" || recs[1]["event"] != "task.canceled" || recs[1]["reservation_sid"] != h.action(2).ReservationSid {
		t.Errorf("the event's line = %v; want INFO with the event and the reservation", recs[1])
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("a supersession logged as an error:\n%s", logs)
	}
}

func TestSupersessionValidate(t *testing.T) {
	const wr, wt = "WR00000000000000000000000000000001", "WT00000000000000000000000000000001"
	for _, tt := range []struct {
		s  outbox.Supersession
		ok bool
	}{
		{outbox.Supersession{ReservationSid: wr, Event: "reservation.accepted"}, true},
		{outbox.Supersession{TaskSid: wt, Event: "task.canceled"}, true},
		{outbox.Supersession{Event: "task.canceled"}, false},
		{outbox.Supersession{ReservationSid: wr, TaskSid: wt}, false},
		{outbox.Supersession{ReservationSid: wt}, false},
		{outbox.Supersession{TaskSid: wr}, false},
		{outbox.Supersession{TaskSid: wt, Event: strings.Repeat("x", 65)}, false},
	} {
		err := tt.s.Validate()
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, outbox.ErrInvalidSupersession) {
			t.Errorf("%+v.Validate() = %v; want ok=%v", tt.s, err, tt.ok)
		}
	}
}

// statsOutbox is an Outbox whose Stats are set by the test; the rest is not used.
type statsOutbox struct {
	outbox.Outbox
	st outbox.Stats
}

func (s statsOutbox) Stats(context.Context) (outbox.Stats, error) { return s.st, nil }

func TestBacklogGauges(t *testing.T) {
	gauge := func(reg *prometheus.Registry, name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("%s not exposed", name)
		return 0
	}
	empty := prometheus.NewRegistry()
	if err := outbox.RegisterBacklog(empty, statsOutbox{}); err != nil {
		t.Fatal(err)
	}
	if d, a := gauge(empty, "reservist_outbox_depth"), gauge(empty, "reservist_outbox_oldest_age_seconds"); d != 0 || a != 0 {
		t.Errorf("empty outbox: depth %v, oldest age %v; want 0, 0", d, a)
	}
	reg := prometheus.NewRegistry()
	before := time.Now()
	if err := outbox.RegisterBacklog(reg, statsOutbox{st: outbox.Stats{Depth: 4, Oldest: before.Add(-90 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	age := gauge(reg, "reservist_outbox_oldest_age_seconds")
	if most := time.Since(before) + 90*time.Second; age < 90 || age > most.Seconds() {
		t.Errorf("oldest age = %v; want in [90, %v]", age, most.Seconds())
	}
	if d := gauge(reg, "reservist_outbox_depth"); d != 4 {
		t.Errorf("depth = %v; want 4", d)
	}
}
