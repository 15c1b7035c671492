package server

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/reservist/reservist/engine/outbox"
)

// sharedFake is a shared outbox (the PostgreSQL one) whose database comes and goes.
type sharedFake struct {
	fakeOutbox
	down atomic.Bool
}

func (s *sharedFake) Ready() error {
	if s.down.Load() {
		return fmt.Errorf("%w: connection refused", outbox.ErrUnreachable)
	}
	return nil
}

func (s *sharedFake) Shared() bool { return true }

// A shared outbox shows on /readyz as "ok" or "unreachable", 503 while unreachable; an
// outbox of one process shows only when it cannot store.
func TestReadinessOfASharedOutbox(t *testing.T) {
	h := newHarness(t)
	ob := &sharedFake{}
	srv := New(Options{Rules: h.rules, Outbox: ob, CallbackPaths: []string{"/cb"}}).Callbacks()
	for _, tc := range []struct {
		down     bool
		code     int
		wantBody string
	}{
		{false, 200, `{"status":"ok","rules":"ok","outbox":"ok"}` + "\n"},
		{true, 503, `{"status":"unavailable","rules":"ok","outbox":"unreachable"}` + "\n"},
		{false, 200, `{"status":"ok","rules":"ok","outbox":"ok"}` + "\n"},
	} {
		ob.down.Store(tc.down)
		rec := newRecorder(srv, "GET", "/readyz")
		if rec.Code != tc.code || rec.Body.String() != tc.wantBody {
			t.Errorf("database down %v: /readyz = %d %s; want %d %s", tc.down, rec.Code, rec.Body, tc.code, tc.wantBody)
		}
	}
}

// From ShuttingDown on, /readyz answers 503 and says so, while callbacks are still answered.
func TestReadinessWhileShuttingDown(t *testing.T) {
	h := newHarness(t)
	s := New(Options{Rules: h.rules, Outbox: h.outbox, CallbackPaths: []string{"/cb"}, AuthToken: ""})
	srv := s.Callbacks()
	if rec := newRecorder(srv, "GET", "/readyz"); rec.Code != 200 || rec.Body.String() != `{"status":"ok","rules":"ok"}`+"\n" {
		t.Errorf("/readyz before ShuttingDown = %d %s; want 200 ok", rec.Code, rec.Body)
	}
	s.ShuttingDown()
	if rec := newRecorder(srv, "GET", "/readyz"); rec.Code != 503 || rec.Body.String() != `{"status":"unavailable","rules":"ok","shutting_down":true}`+"\n" {
		t.Errorf("/readyz after ShuttingDown = %d %s; want 503 with shutting_down", rec.Code, rec.Body)
	}
	if rec := newRecorder(srv, "GET", "/cb?"+callbackParams(`{"channel":"chat"}`).Encode()); rec.Code != 200 {
		t.Errorf("a callback after ShuttingDown = %d %s; want 200: callbacks are answered until the drain", rec.Code, rec.Body)
	}
	if rec := newRecorder(srv, "GET", "/healthz"); rec.Code != 200 {
		t.Errorf("/healthz after ShuttingDown = %d; want 200: the process still runs", rec.Code)
	}
}
