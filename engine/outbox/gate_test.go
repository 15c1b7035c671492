package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/testkit"
)

// manualClock is a clock only the test moves.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Now().Add(d)
	return ch
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// scripted answers each Send with the next error of its script (nil once it runs out) and
// counts the calls.
type scripted struct {
	mu     sync.Mutex
	script []error
	calls  int
}

func (s *scripted) Send(context.Context, outbox.Action) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.script) == 0 {
		return nil
	}
	err := s.script[0]
	s.script = s.script[1:]
	return err
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func status(code int, retryAfter time.Duration) error {
	return &outbox.HTTPError{StatusCode: code, Message: http.StatusText(code), RetryAfter: retryAfter}
}

type gateHarness struct {
	clock  *manualClock
	sender *scripted
	c      *outbox.Carrier
	logs   *testkit.LogBuffer
}

func newGate(script ...error) *gateHarness {
	h := &gateHarness{clock: &manualClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}, sender: &scripted{script: script}, logs: &testkit.LogBuffer{}}
	h.c = outbox.NewCarrier(outbox.CarrierOptions{Sender: h.sender, Clock: h.clock,
		Logger: slog.New(slog.NewJSONHandler(h.logs, nil))})
	return h
}

// action n is due now, with a deadline far enough that nothing is abandoned.
func (h *gateHarness) action(n uint64) outbox.Action {
	now := h.clock.Now()
	return outbox.Action{ReservationSid: testkit.Sid("WR", n), TaskSid: testkit.Sid("WT", n), WorkspaceSid: testkit.WorkspaceSid,
		Params: outbox.Params{"ReservationStatus": "accepted"}, Received: now, Due: now, Deadline: now.Add(time.Hour)}
}

func (h *gateHarness) try(n uint64) outbox.Step {
	return h.c.Try(context.Background(), h.action(n), 0, func(outbox.Step) {})
}

// A 429 holds back every call, not only the action it answered: for its Retry-After.
func TestGate429PausesEveryCall(t *testing.T) {
	h := newGate(status(429, 3*time.Second))
	t0 := h.clock.Now()
	if s := h.try(1); s.Outcome != outbox.Retried {
		t.Fatalf("429: outcome %v; want Retried", s.Outcome)
	}
	if got := h.c.HeldUntil(t0); !got.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("HeldUntil after a 429 with Retry-After 3 = %v; want %v", got, t0.Add(3*time.Second))
	}
	for n := uint64(2); n < 10; n++ {
		if s := h.try(n); s.Outcome != outbox.Held || !s.Next.Equal(t0.Add(3*time.Second)) {
			t.Errorf("action %d during the pause: %+v; want Held until the pause ends", n, s)
		}
	}
	if h.sender.count() != 1 {
		t.Errorf("%d calls during the pause; want only the one answered 429", h.sender.count())
	}
	h.clock.advance(3 * time.Second)
	if s := h.try(2); s.Outcome != outbox.Sent {
		t.Errorf("after the pause: %v; want Sent", s.Outcome)
	}
	if !h.c.HeldUntil(h.clock.Now()).IsZero() {
		t.Error("still held after a success")
	}
	if n := len(h.logs.Records("REST calls paused: TaskRouter answered 429 Too Many Requests")); n != 1 {
		t.Errorf("%d pause lines; want 1", n)
	}
}

// Without Retry-After, 429s in a row pause for the cooldown, doubling.
func TestGate429WithoutRetryAfterDoubles(t *testing.T) {
	h := newGate(status(429, 0), status(429, 0), status(429, 0))
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		now := h.clock.Now()
		if s := h.try(1); s.Outcome != outbox.Retried {
			t.Fatalf("429: %v", s.Outcome)
		}
		if got := h.c.HeldUntil(now).Sub(now); got != want {
			t.Errorf("pause = %v; want %v", got, want)
		}
		h.clock.advance(want)
	}
}

// Failures in a row open the breaker: nothing is sent for a cooldown, then one probe at a
// time; a failed probe doubles the cooldown, a good one closes the breaker.
func TestGateBreaker(t *testing.T) {
	var script []error
	for range outbox.DefaultBreakerThreshold {
		script = append(script, status(503, 0))
	}
	script = append(script, errors.New("connection refused")) // the first probe fails
	h := newGate(script...)
	for n := range uint64(outbox.DefaultBreakerThreshold) {
		if s := h.try(n + 1); s.Outcome != outbox.Retried {
			t.Fatalf("failure %d: %v", n, s.Outcome)
		}
	}
	now := h.clock.Now()
	if got := h.c.HeldUntil(now); !got.Equal(now.Add(outbox.DefaultBreakerCooldown)) {
		t.Fatalf("HeldUntil with the breaker open = %v; want the cooldown %v", got, now.Add(outbox.DefaultBreakerCooldown))
	}
	calls := h.sender.count()
	for n := uint64(10); n < 100; n++ {
		if s := h.try(n); s.Outcome != outbox.Held {
			t.Fatalf("action %d with the breaker open: %v; want Held", n, s.Outcome)
		}
	}
	if h.sender.count() != calls {
		t.Errorf("%d calls with the breaker open; want none", h.sender.count()-calls)
	}

	// The cooldown over, one probe goes; it fails, and the cooldown doubles.
	h.clock.advance(outbox.DefaultBreakerCooldown)
	if s := h.try(100); s.Outcome != outbox.Retried {
		t.Fatalf("probe: %v; want Retried (it failed)", s.Outcome)
	}
	now = h.clock.Now()
	if got := h.c.HeldUntil(now).Sub(now); got != 2*outbox.DefaultBreakerCooldown {
		t.Errorf("cooldown after a failed probe = %v; want %v", got, 2*outbox.DefaultBreakerCooldown)
	}
	h.clock.advance(2 * outbox.DefaultBreakerCooldown)

	// The second probe works: the breaker closes.
	if s := h.try(1); s.Outcome != outbox.Sent {
		t.Fatalf("second probe: %v; want Sent", s.Outcome)
	}
	if !h.c.HeldUntil(h.clock.Now()).IsZero() {
		t.Error("breaker still holds calls after a good probe")
	}
	for n := uint64(200); n < 210; n++ {
		if s := h.try(n); s.Outcome != outbox.Sent {
			t.Errorf("after the breaker closed: %v; want Sent", s.Outcome)
		}
	}
	if n := len(h.logs.Records("REST calls resume: TaskRouter answers again")); n != 1 {
		t.Errorf("%d resume lines; want 1", n)
	}
}

// While the probe is in flight, every other call is held.
func TestGateOneProbeAtATime(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 1)
	failures := 0
	clock := &manualClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	c := outbox.NewCarrier(outbox.CarrierOptions{Clock: clock, Sender: senderFunc(func(ctx context.Context, a outbox.Action) error {
		if failures < outbox.DefaultBreakerThreshold {
			failures++
			return status(500, 0)
		}
		started <- struct{}{}
		<-release
		return nil
	})})
	h := &gateHarness{clock: clock, c: c}
	for n := range uint64(outbox.DefaultBreakerThreshold) {
		h.try(n + 1)
	}
	clock.advance(outbox.DefaultBreakerCooldown)
	probe := make(chan outbox.Step)
	go func() { probe <- h.try(1) }()
	<-started
	for n := uint64(2); n < 20; n++ {
		if s := h.try(n); s.Outcome != outbox.Held {
			t.Errorf("action %d while the probe is in flight: %v; want Held", n, s.Outcome)
		}
	}
	close(release)
	if s := <-probe; s.Outcome != outbox.Sent {
		t.Fatalf("probe: %v", s.Outcome)
	}
	if s := h.try(30); s.Outcome != outbox.Sent {
		t.Errorf("after the probe: %v; want Sent", s.Outcome)
	}
}

// A 4xx about the action shows TaskRouter working: it resets the failures in a row.
func TestGateRefusalIsNoFailure(t *testing.T) {
	var script []error
	for range 3 {
		for range outbox.DefaultBreakerThreshold - 1 {
			script = append(script, status(502, 0))
		}
		script = append(script, &outbox.HTTPError{StatusCode: 400, Code: 20001, Message: "not pending"})
	}
	h := newGate(script...)
	for n := range uint64(len(script)) {
		if s := h.try(n + 1); s.Outcome == outbox.Held {
			t.Fatalf("call %d held: a 400 between failures must reset them", n)
		}
	}
}

// Retries are logged at most once a second, with how many were not.
func TestRetryLogsSampled(t *testing.T) {
	var script []error
	for range 3000 {
		script = append(script, status(500, 0))
	}
	h := newGate(script...)
	// A high threshold keeps the breaker out of it.
	h.c = outbox.NewCarrier(outbox.CarrierOptions{Sender: h.sender, Clock: h.clock, BreakerThreshold: 1 << 20,
		Logger: slog.New(slog.NewJSONHandler(h.logs, nil))})
	for second := range 3 {
		for n := range uint64(1000) {
			if s := h.try(uint64(second)*1000 + n + 1); s.Outcome != outbox.Retried {
				t.Fatalf("%v", s.Outcome)
			}
		}
		h.clock.advance(time.Second)
	}
	recs := h.logs.Records("outbox action will be retried")
	if len(recs) != 3 {
		t.Fatalf("%d retry lines for 3000 retries over 3 seconds; want 3", len(recs))
	}
	if got := recs[1]["retries_not_logged"]; got != float64(999) {
		t.Errorf("second line's retries_not_logged = %v; want 999", got)
	}
	if _, ok := recs[0]["wait_seconds"].(float64); !ok {
		t.Errorf("retry line %v lacks wait_seconds", recs[0])
	}
}

// senderFunc adapts a function to outbox.Sender.
type senderFunc func(ctx context.Context, a outbox.Action) error

func (f senderFunc) Send(ctx context.Context, a outbox.Action) error { return f(ctx, a) }
