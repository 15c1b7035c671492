package taskroutertest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
)

// receiver is an EventCallbackUrl that keeps what it is sent and answers 204.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []url.Values
	sigs []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := req.ParseForm(); err != nil || req.Method != http.MethodPost {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, req.PostForm)
		r.sigs = append(r.sigs, req.Header.Get("X-Twilio-Signature"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

// flat is a form as twilio-go's validator takes it.
func flat(v url.Values) map[string]string {
	m := map[string]string{}
	for k := range v {
		m[k] = v.Get(k)
	}
	return m
}

// TestSendEvent: an event goes out form-encoded with TaskRouter's parameters and a
// signature that twilio-go's RequestValidator accepts for the EventCallbackUrl.
func TestSendEvent(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	rcv := newReceiver(t)
	ctx := context.Background()
	if _, err := s.SendEvent(ctx, Event{Type: "task.canceled", TaskSid: wt}); err == nil {
		t.Error("SendEvent without an EventCallbackUrl: no error")
	}
	u := rcv.URL + "/taskrouter/events?x=1"
	s.SetEventCallbackURL(u)
	at := time.Unix(1_800_000_000, 123_000_000)
	sent, err := s.SendEvent(ctx, Event{Type: "reservation.rescinded", TaskSid: wt, ReservationSid: NewSid("WR", 9), WorkerSid: wk,
		TaskAttributes: `{"secret":"x"}`, Time: at})
	if err != nil || sent.Status != http.StatusNoContent || sent.ContentType != "application/json" {
		t.Fatalf("SendEvent = %+v, %v; want 204 application/json", sent, err)
	}
	form := rcv.got[0]
	for k, want := range map[string]string{
		"EventType": "reservation.rescinded", "AccountSid": s.AccountSid, "WorkspaceSid": DefaultWorkspaceSid,
		"ResourceType": "Reservation", "ResourceSid": NewSid("WR", 9), "ReservationSid": NewSid("WR", 9),
		"TaskSid": wt, "WorkerSid": wk, "TaskAttributes": `{"secret":"x"}`, "WorkerAttributes": "{}",
		"Timestamp": "1800000000", "TimestampMs": "1800000000123",
	} {
		if got := form.Get(k); got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
	if form.Get("EventDescription") == "" || len(form.Get("Sid")) != 34 {
		t.Errorf("EventDescription %q, Sid %q: want a description and an EV SID", form.Get("EventDescription"), form.Get("Sid"))
	}
	v := client.NewRequestValidator(s.AuthToken)
	if !v.Validate(u, flat(form), rcv.sigs[0]) {
		t.Errorf("twilio-go's RequestValidator refuses the event's signature %q", rcv.sigs[0])
	}
	if v.Validate(rcv.URL+"/other", flat(form), rcv.sigs[0]) {
		t.Error("the signature validates for another URL")
	}
}

// TestUpdateEmitsEvents: accepting, wrapping and completing a reservation through the REST
// API send reservation.accepted, .wrapup and .completed; a refused update sends nothing.
func TestUpdateEmitsEvents(t *testing.T) {
	s := NewServer(Config{})
	rcv := newReceiver(t)
	s.SetEventCallbackURL(rcv.URL + "/events")
	wr := NewSid("WR", 1)
	steps := []struct {
		status string
		want   int
	}{{"accepted", 200}, {"accepted", 400}, {"wrapping", 200}, {"completed", 200}}
	for _, st := range steps {
		if a := do(t, s, "POST", taskPath(wr), url.Values{"ReservationStatus": {st.status}}, "", ""); a.status != st.want {
			t.Fatalf("ReservationStatus=%s: %d; want %d", st.status, a.status, st.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.WaitEvents(ctx, 3); err != nil {
		t.Fatal(err)
	}
	s.Close() // waits for events on their way
	got := map[string]bool{}
	for _, e := range s.Events() {
		if e.Status != http.StatusNoContent {
			t.Errorf("%s answered %d", e.Event.Type, e.Status)
		}
		if e.Form.Get("ReservationSid") != wr || e.Form.Get("TaskSid") != wt {
			t.Errorf("%s names %s/%s; want %s/%s", e.Event.Type, e.Form.Get("TaskSid"), e.Form.Get("ReservationSid"), wt, wr)
		}
		got[e.Event.Type] = true
	}
	if len(s.Events()) != 3 || !got["reservation.accepted"] || !got["reservation.wrapup"] || !got["reservation.completed"] {
		t.Errorf("events sent: %v; want accepted, wrapup, completed once each", got)
	}

	// Instructions that accept the reservation send reservation.accepted too.
	s2 := NewServer(Config{})
	defer s2.Close()
	s2.SetEventCallbackURL(rcv.URL + "/events")
	form := url.Values{"Instruction": {"conference"}, "From": {"+15005550006"}, "To": {"client:alice"}}
	if a := do(t, s2, "POST", taskPath(NewSid("WR", 2)), form, "", ""); a.status != 200 {
		t.Fatalf("conference: %d %v", a.status, a.body)
	}
	evs, err := s2.WaitEvents(ctx, 1)
	if err != nil || evs[0].Event.Type != "reservation.accepted" {
		t.Fatalf("after a conference instruction: %+v, %v; want reservation.accepted", evs, err)
	}
}
