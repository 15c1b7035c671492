// Package outboxtest is the test suite that every outbox backend passes, so that the
// embedded outbox and the shared one mean the same (docs/outbox.md): durable once Put has
// returned, one action per reservation, retries that honour Retry-After, the deadline, final
// errors and refused credentials, dry-run, the drain at shutdown, Put after Close, Stats, and
// Supersede (an Event callback ending pending actions).
//
// The suite runs on the real clock, with delays and backoff of a second or two, because a
// backend built on a job queue in a database keeps the queue's time; each test is bounded.
// It carries actions out through the fake TaskRouter of taskroutertest and twilio-go's
// sender, as serve does.
package outboxtest

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// Config is what the suite opens an outbox with.
type Config struct {
	Carrier     *outbox.Carrier
	Concurrency int           // 0: the backend's default
	Drain       time.Duration // 0: the backend's default
}

// Store is one empty store of a backend, for one test: each call opens it again, so that
// what one outbox left in it is what the next one finds.
type Store func(Config) (outbox.Outbox, error)

// Run runs the suite, each test in parallel on a store of its own from newStore.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, *harness)
	}{
		{"DurableAcrossReopen", testDurable},
		{"OncePerReservation", testOncePerReservation},
		{"RetryAfterThenUnavailableThenOK", testRetryAfter},
		{"NetworkErrorRetried", testNetworkError},
		{"Delay", testDelay},
		{"DeadlinePassedAtPut", testDeadlinePassed},
		{"RetriesRunOutAtDeadline", testRetriesRunOut},
		{"NotPendingIsSuperseded", testNotPending},
		{"InvalidParamsAreFinal", testInvalidParams},
		{"Unauthorized", testUnauthorized},
		{"Forbidden", testForbidden},
		{"DryRun", testDryRun},
		{"DrainFinishesCallsInFlight", testDrainFinishes},
		{"DrainCutsOffLongCalls", testDrainCutsOff},
		{"Closed", testClosed},
		{"RunTwice", testRunTwice},
		{"Stats", testStats},
		{"ConcurrencyLimit", testConcurrencyLimit},
		{"IncompleteActionsRefused", testIncomplete},
		{"PutBoundedByItsContext", testPutContext},
		{"SupersedeByReservationBeforeDue", testSupersedeReservation},
		{"SupersedeByTask", testSupersedeTask},
		{"SupersedeInFlightFinishes", testSupersedeInFlight},
		{"SupersedeInFlightThenRetryEnds", testSupersedeInFlightRetry},
		{"SupersedeDurable", testSupersedeDurable},
		{"SupersedeRefusesBadInput", testSupersedeBadInput},
		{"SupersedeRacesTheScheduler", testSupersedeRace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newHarness(t, newStore(t)))
		})
	}
}

// wait bounds every wait of the suite: generous for a loaded two-core machine under the
// race detector, short next to a test binary's timeout.
const wait = 20 * time.Second

const (
	workspace = "WS00000000000000000000000000000001"
	worker    = "WK00000000000000000000000000000003"
)

// harness is one test's store, fake TaskRouter, logs and metrics.
type harness struct {
	t     *testing.T
	store Store
	fake  *taskroutertest.Server
	logs  *testkit.LogBuffer
	reg   *prometheus.Registry
	ob    outbox.Outbox
}

func newHarness(t *testing.T, store Store) *harness {
	h := &harness{t: t, store: store, fake: taskroutertest.NewServer(taskroutertest.Config{}), logs: &testkit.LogBuffer{}}
	t.Cleanup(h.fake.Close)
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), h.fake.AuthToken) {
			t.Error("the auth token appears in the logs")
		}
		if t.Failed() {
			t.Logf("the outbox's log:\n%s", h.logs)
		}
	})
	return h
}

// options are a test's settings for open.
type options struct {
	token                   string // REST auth token: "" the fake's, "-" none (dry-run)
	sender                  outbox.Sender
	concurrency             int
	drain                   time.Duration
	backoffBase, backoffMax time.Duration
}

// open opens the store with a fresh registry, and closes it when the test ends.
func (h *harness) open(o options) outbox.Outbox {
	h.t.Helper()
	h.reg = prometheus.NewRegistry()
	metrics := outbox.NewMetrics()
	if err := metrics.Register(h.reg); err != nil {
		h.t.Fatal(err)
	}
	sender := o.sender
	if sender == nil && o.token != "-" {
		token := o.token
		if token == "" {
			token = h.fake.AuthToken
		}
		s, err := taskrouter.NewSender(taskrouter.Config{
			Credentials: taskrouter.Credentials{AccountSid: h.fake.AccountSid, AuthToken: token},
			BaseURL:     h.fake.URL,
		})
		if err != nil {
			h.t.Fatal(err)
		}
		sender = s
	}
	backoffBase := o.backoffBase
	if backoffBase == 0 {
		backoffBase = 100 * time.Millisecond
	}
	carrier := outbox.NewCarrier(outbox.CarrierOptions{
		Sender:      sender,
		Logger:      slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:     metrics,
		BackoffBase: backoffBase,
		BackoffMax:  o.backoffMax,
	})
	ob, err := h.store(Config{Carrier: carrier, Concurrency: o.concurrency, Drain: o.drain})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := outbox.RegisterBacklog(h.reg, ob); err != nil {
		h.t.Fatal(err)
	}
	h.ob = ob
	h.t.Cleanup(func() { _ = ob.Close() })
	return ob
}

// run starts Run in the background and, at cleanup, stops it and checks that it returned
// nil.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := h.start(ctx)
	h.t.Cleanup(func() {
		cancel()
		h.returned(errc)
	})
}

func (h *harness) start(ctx context.Context) <-chan error {
	errc := make(chan error, 1)
	ob := h.ob
	go func() { errc <- ob.Run(ctx) }()
	return errc
}

// returned waits for Run's result and checks that it is nil.
func (h *harness) returned(errc <-chan error) {
	h.t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		h.t.Errorf("Run did not return within %v of being stopped", wait)
	}
}

// action is an accept for reservation n, received now, due now, with a two-minute deadline.
func action(n uint64) outbox.Action {
	now := time.Now()
	return outbox.Action{
		ReservationSid: taskroutertest.NewSid("WR", n),
		TaskSid:        taskroutertest.NewSid("WT", n),
		WorkspaceSid:   workspace,
		WorkerSid:      worker,
		Rule:           "chat-and-sms",
		Params:         outbox.Params{"ReservationStatus": "accepted"},
		Received:       now,
		Due:            now,
		Deadline:       now.Add(120 * time.Second),
	}
}

func (h *harness) put(a outbox.Action) bool {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	queued, err := h.ob.Put(ctx, a)
	if err != nil {
		h.t.Fatalf("Put(%s): %v", a.ReservationSid, err)
	}
	return queued
}

func (h *harness) depth() int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := h.ob.Stats(ctx)
	if err != nil {
		h.t.Fatalf("Stats: %v", err)
	}
	return st.Depth
}

// calls reads reservist_rest_calls_total{result}.
func (h *harness) calls(result string) int {
	h.t.Helper()
	return int(h.metric("reservist_rest_calls_total", result))
}

// metric reads a gauge, a counter with the given result label (or op; summed
// over the other labels, such as status_class), or a histogram's sample
// count.
func (h *harness) metric(name, result string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum, found := 0.0, false
		for _, m := range mf.GetMetric() {
			if result != "" && !hasValue(m, result) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum, found = sum+m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
		if found {
			return sum
		}
	}
	h.t.Fatalf("metric %s{result=%q} not found", name, result)
	return 0
}

// hasValue reports whether one of m's labels has the value v: the result of
// reservist_rest_calls_total, the op of reservist_outbox_store_errors_total.
func hasValue(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds, failing the test after wait.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled waits until the outbox holds nothing pending and count says n.
func (h *harness) settled(result string, n int) {
	h.t.Helper()
	h.waitFor(result+" and nothing pending", func() bool { return h.calls(result) == n && h.depth() == 0 })
}

func statuses(reqs []taskroutertest.Request) []int {
	var out []int
	for _, r := range reqs {
		out = append(out, r.Status)
	}
	return out
}

// senderFunc adapts a function to outbox.Sender.
type senderFunc func(ctx context.Context, a outbox.Action) error

func (f senderFunc) Send(ctx context.Context, a outbox.Action) error { return f(ctx, a) }

// Actions put and not carried out are still there for the next outbox on the store, and
// are carried out once; the reservations stay known.
func testDurable(t *testing.T, h *harness) {
	ob := h.open(options{})
	for i := range 3 {
		if !h.put(action(uint64(i + 1))) {
			t.Fatalf("action %d not queued", i+1)
		}
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	h.open(options{})
	if got := h.depth(); got != 3 {
		t.Fatalf("Depth after reopening = %d, want 3", got)
	}
	if h.put(action(2)) {
		t.Error("an action pending before the reopen was queued again")
	}
	h.run()
	h.settled("ok", 3)
	seen := map[string]int{}
	for _, r := range h.fake.Requests() {
		seen[r.ReservationSid]++
	}
	want := map[string]int{}
	for i := range 3 {
		want[taskroutertest.NewSid("WR", uint64(i+1))] = 1
	}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("requests per reservation (-want +got):\n%s", d)
	}
}

// Concurrent Puts for one reservation, asking different things, queue one action; a Put
// after it was carried out queues nothing either.
func testOncePerReservation(t *testing.T, h *harness) {
	const n, each = 40, 3
	h.open(options{})
	h.run()
	var wg sync.WaitGroup
	var mu sync.Mutex
	queued := map[string]int{}
	asked := map[string]map[string]bool{} // reservation → the ReservationStatus values put
	for i := range n {
		for k := range each {
			a := action(uint64(i + 1))
			a.Params = outbox.Params{"ReservationStatus": []string{"accepted", "rejected", "accepted"}[k]}
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				ok, err := h.ob.Put(ctx, a)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if asked[a.ReservationSid] == nil {
					asked[a.ReservationSid] = map[string]bool{}
				}
				asked[a.ReservationSid][a.Params["ReservationStatus"].(string)] = true
				if ok {
					queued[a.ReservationSid]++
				}
			})
		}
	}
	wg.Wait()
	for sid, c := range queued {
		if c != 1 {
			t.Errorf("%s queued %d times", sid, c)
		}
	}
	if len(queued) != n {
		t.Errorf("%d reservations queued, want %d", len(queued), n)
	}
	h.settled("ok", n)
	seen := map[string]int{}
	for _, r := range h.fake.Requests() {
		seen[r.ReservationSid]++
		if !asked[r.ReservationSid][r.Form.Get("ReservationStatus")] {
			t.Errorf("%s sent ReservationStatus=%s, which no Put asked for", r.ReservationSid, r.Form.Get("ReservationStatus"))
		}
	}
	for sid, c := range seen {
		if c != 1 {
			t.Errorf("%s sent %d times", sid, c)
		}
	}
	if h.put(action(1)) {
		t.Error("a Put after the action was carried out queued again")
	}
}

func testRetryAfter(t *testing.T, h *harness) {
	h.open(options{backoffBase: 100 * time.Millisecond, backoffMax: time.Second})
	a := action(1)
	a.Params = outbox.Params{"Instruction": "call", "CallFrom": "+15005550006", "CallTo": "+15551230000",
		"CallUrl": "https://example.com/twiml/agent-answer", "CallAccept": true}
	h.fake.Inject(a.ReservationSid,
		taskroutertest.Fault{Status: 429, RetryAfter: "1"},
		taskroutertest.Fault{Status: 503})
	h.put(a)
	h.run()
	h.settled("ok", 1)
	reqs := h.fake.RequestsFor(a.ReservationSid)
	if d := cmp.Diff([]int{429, 503, 200}, statuses(reqs)); d != "" {
		t.Fatalf("attempts (-want +got):\n%s", d)
	}
	for _, r := range reqs {
		if d := cmp.Diff(a.Params.Form(), r.Form); d != "" {
			t.Errorf("form (-want +got):\n%s", d)
		}
	}
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < time.Second {
		t.Errorf("the attempt after a 429 with Retry-After: 1 came %v later, want at least 1s", gap)
	}
	if got := h.calls("retry"); got != 2 {
		t.Errorf("retry count = %d, want 2", got)
	}
	if got := h.metric("reservist_rest_success_delay_seconds", ""); got != 1 {
		t.Errorf("success delay samples = %v, want 1", got)
	}
	if r, _ := h.fake.Reservation(a.ReservationSid); r.Status != "accepted" {
		t.Errorf("reservation status = %q, want accepted", r.Status)
	}
}

func testNetworkError(t *testing.T, h *harness) {
	h.open(options{})
	a := action(1)
	h.fake.Inject(a.ReservationSid, taskroutertest.Fault{Drop: true})
	h.put(a)
	h.run()
	h.settled("ok", 1)
	if d := cmp.Diff([]int{-1, 200}, statuses(h.fake.Requests())); d != "" {
		t.Errorf("attempts (-want +got):\n%s", d)
	}
}

// A delayed action is not sent before it is due, and soon after.
func testDelay(t *testing.T, h *harness) {
	h.open(options{})
	h.run()
	a := action(1)
	a.Due = a.Received.Add(1500 * time.Millisecond)
	h.put(a)
	if got := h.depth(); got != 1 {
		t.Errorf("Depth while the action waits = %d, want 1", got)
	}
	h.settled("ok", 1)
	r := h.fake.Requests()[0]
	if r.Time.Before(a.Due) {
		t.Errorf("sent %v before it was due", a.Due.Sub(r.Time))
	}
	if late := r.Time.Sub(a.Due); late > 2*time.Second {
		t.Errorf("sent %v after it was due, want within 2s", late)
	} else {
		t.Logf("sent %v after it was due", late.Round(time.Millisecond))
	}
}

func testDeadlinePassed(t *testing.T, h *harness) {
	h.open(options{})
	a := action(1)
	a.Received = a.Received.Add(-3 * time.Minute)
	a.Due = a.Received
	a.Deadline = a.Received.Add(2 * time.Minute)
	h.put(a)
	h.run()
	h.settled("abandoned", 1)
	if got := len(h.fake.Requests()); got != 0 {
		t.Errorf("%d requests for an expired reservation", got)
	}
}

func testRetriesRunOut(t *testing.T, h *harness) {
	h.open(options{backoffBase: 100 * time.Millisecond, backoffMax: 400 * time.Millisecond})
	a := action(1)
	a.Deadline = a.Received.Add(2 * time.Second)
	h.fake.Inject(a.ReservationSid, taskroutertest.Times(1000, taskroutertest.Fault{Status: 503})...)
	h.put(a)
	h.run()
	h.settled("abandoned", 1)
	reqs := h.fake.Requests()
	if len(reqs) < 2 {
		t.Errorf("%d attempts, want retries before giving up", len(reqs))
	}
	// Every attempt but the last is counted a retry; so is the last when its retry was due
	// before the deadline but came too late to be made.
	if got := h.calls("retry"); got != len(reqs)-1 && got != len(reqs) {
		t.Errorf("retry count %d after %d attempts, want %d or %d", got, len(reqs), len(reqs)-1, len(reqs))
	}
	for _, r := range reqs {
		if r.Time.After(a.Deadline) {
			t.Errorf("an attempt %v after the deadline", r.Time.Sub(a.Deadline))
		}
	}
	if len(h.logs.Records("outbox action abandoned")) != 1 {
		t.Error("abandonment not logged once")
	}
}

// TaskRouter's 400 for a reservation that is no longer pending ends the action as
// superseded, at info: for a status update (20001 with its message) and for an instruction
// (its own code, 40114 for call). Not retried, not an error, and the reservation stays known.
func testNotPending(t *testing.T, h *harness) {
	h.open(options{})
	accept, call := action(1), action(2)
	call.Params = outbox.Params{"Instruction": "call", "CallFrom": "+15005550006", "CallTo": "+15551230000",
		"CallUrl": "https://example.com/twiml/agent-answer", "CallAccept": true}
	for _, a := range []outbox.Action{accept, call} {
		h.fake.AddReservation(taskroutertest.Reservation{Sid: a.ReservationSid, WorkspaceSid: workspace, TaskSid: a.TaskSid, Status: "canceled"})
		h.put(a)
	}
	h.run()
	h.settled("superseded", 2)
	if d := cmp.Diff([]int{400, 400}, statuses(h.fake.Requests())); d != "" {
		t.Errorf("attempts (-want +got):\n%s", d)
	}
	if got := h.calls("final_error") + h.calls("retry"); got != 0 {
		t.Errorf("final_error + retry = %d; want 0", got)
	}
	if got := h.metric("reservist_rest_calls_total", "superseded"); got != 2 {
		t.Errorf("superseded = %v; want 2", got)
	}
	codes := map[string]any{}
	for _, r := range h.logs.Records("outbox action superseded") {
		if r["level"] != "INFO" || r["status"] != float64(400) {
			t.Errorf("superseded line %v; want INFO with status 400", r)
		}
		codes[r["reservation_sid"].(string)] = r["twilio_code"]
	}
	if d := cmp.Diff(map[string]any{accept.ReservationSid: float64(20001), call.ReservationSid: float64(40114)}, codes); d != "" {
		t.Errorf("twilio_code by reservation (-want +got):\n%s", d)
	}
	if len(h.logs.Records("outbox action failed")) != 0 {
		t.Error("a superseded action was logged as failed")
	}
	if h.ob.Unauthorized() {
		t.Error("a 400 made the outbox unauthorized")
	}
	if h.put(accept) {
		t.Error("the superseded reservation was queued again")
	}
}

func testInvalidParams(t *testing.T, h *harness) {
	h.open(options{})
	a := action(1)
	a.Params = outbox.Params{"reservation_status": "accepted"}
	h.put(a)
	h.run()
	h.settled("final_error", 1)
	if len(h.fake.Requests()) != 0 {
		t.Error("invalid parameters were sent")
	}
}

func testUnauthorized(t *testing.T, h *harness) {
	h.open(options{token: "ffffffffffffffffffffffffffffffff"})
	if h.ob.Unauthorized() {
		t.Fatal("unauthorized before any call")
	}
	h.put(action(1))
	h.run()
	h.settled("final_error", 1)
	if !h.ob.Unauthorized() {
		t.Error("a 401 did not make the outbox unauthorized")
	}
	if d := cmp.Diff([]int{401}, statuses(h.fake.Requests())); d != "" {
		t.Errorf("attempts (-want +got):\n%s", d)
	}
	if !strings.Contains(h.logs.String(), `"twilio_code":20003`) {
		t.Error("the log lacks Twilio's code")
	}
}

func testForbidden(t *testing.T, h *harness) {
	h.open(options{})
	a := action(1)
	h.fake.Inject(a.ReservationSid, taskroutertest.Fault{Status: 403})
	h.put(a)
	h.run()
	h.settled("final_error", 1)
	if !h.ob.Unauthorized() {
		t.Error("403 did not make the outbox unauthorized")
	}
	if got := len(h.fake.Requests()); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

func testDryRun(t *testing.T, h *harness) {
	h.open(options{token: "-"})
	a := action(1)
	a.Params = outbox.Params{"Instruction": "dequeue", "DequeueFrom": "+15005550006",
		"DequeueStatusCallbackEvent": []string{"initiated", "completed"}}
	h.put(a)
	h.run()
	h.settled("dry_run", 1)
	lines := h.logs.Records("dry-run")
	if len(lines) != 1 {
		t.Fatalf("%d dry-run lines, want 1", len(lines))
	}
	want := map[string]any{"DequeueFrom": []any{"+15005550006"}, "Instruction": []any{"dequeue"},
		"DequeueStatusCallbackEvent": []any{"initiated", "completed"}}
	if d := cmp.Diff(want, lines[0]["params"]); d != "" {
		t.Errorf("dry-run params (-want +got):\n%s", d)
	}
	if lines[0]["reservation_sid"] != a.ReservationSid || lines[0]["rule"] != a.Rule {
		t.Errorf("dry-run line = %v", lines[0])
	}
	if h.put(a) {
		t.Error("a dry-run reservation was queued again")
	}
	if len(h.fake.Requests()) != 0 {
		t.Error("a dry run made requests")
	}
}

// waitInFlight waits until the fake holds a request unanswered.
func (h *harness) waitInFlight() {
	h.t.Helper()
	h.waitFor("a call in flight", func() bool {
		reqs := h.fake.Requests()
		return len(reqs) == 1 && reqs[0].Status == 0
	})
}

// A call in flight when the shutdown begins may finish: cut off, it might have reached
// TaskRouter already.
func testDrainFinishes(t *testing.T, h *harness) {
	release := make(chan struct{})
	h.open(options{drain: wait})
	a := action(1)
	h.fake.Inject(a.ReservationSid, taskroutertest.Fault{Hold: release})
	h.put(a)
	ctx, cancel := context.WithCancel(context.Background())
	errc := h.start(ctx)
	h.waitInFlight()
	cancel()
	close(release)
	h.returned(errc)
	if got := h.calls("ok"); got != 1 {
		t.Errorf("ok calls after the drain = %d, want the call in flight finished", got)
	}
	if got := h.depth(); got != 0 {
		t.Errorf("Depth after the drain = %d, want 0", got)
	}
}

// A call that outlasts the drain is cut off and stays pending, for the next outbox. The fake
// TaskRouter carries a cut-off call out all the same (as TaskRouter may), so that the next
// attempt is refused as no longer pending: what at least once means.
func testDrainCutsOff(t *testing.T, h *harness) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	ob := h.open(options{drain: 200 * time.Millisecond})
	a := action(1)
	h.fake.Inject(a.ReservationSid, taskroutertest.Fault{Hold: hold})
	h.put(a)
	ctx, cancel := context.WithCancel(context.Background())
	errc := h.start(ctx)
	h.waitInFlight()
	cancel()
	h.returned(errc)
	if got := h.depth(); got != 1 {
		t.Fatalf("Depth after the shutdown = %d, want the cut-off action still pending", got)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	h.open(options{})
	h.run()
	h.waitFor("the action tried again", func() bool { return h.calls("ok")+h.calls("superseded") == 1 && h.depth() == 0 })
	got := statuses(h.fake.Requests())
	slices.Sort(got)
	if d := cmp.Diff([]int{200, 400}, got); d != "" {
		t.Errorf("attempts, sorted (-want +got):\n%s", d)
	}
}

func testClosed(t *testing.T, h *harness) {
	ob := h.open(options{})
	if err := ob.Ready(); err != nil {
		t.Errorf("Ready before Close: %v", err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Put(context.Background(), action(1)); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	if err := ob.Run(context.Background()); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if err := ob.Ready(); err == nil {
		t.Error("Ready after Close is nil")
	}
	if err := ob.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

func testRunTwice(t *testing.T, h *harness) {
	started := make(chan struct{})
	ob := h.open(options{drain: 100 * time.Millisecond, sender: senderFunc(func(ctx context.Context, a outbox.Action) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})})
	h.put(action(1))
	errc := h.start(context.Background())
	<-started
	if err := ob.Run(context.Background()); err == nil || errors.Is(err, outbox.ErrClosed) {
		t.Errorf("a second Run: %v, want already running", err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	h.returned(errc)
}

func testStats(t *testing.T, h *harness) {
	h.open(options{})
	now := time.Now()
	for i, age := range []time.Duration{2 * time.Second, 3 * time.Second, time.Second} {
		a := action(uint64(i + 1))
		a.Received = now.Add(-age)
		a.Due = a.Received
		h.put(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := h.ob.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Databases keep microseconds.
	if want := now.Add(-3 * time.Second); st.Depth != 3 || st.Oldest.Sub(want).Abs() > time.Millisecond {
		t.Errorf("Stats = %+v, want depth 3, oldest %v", st, want)
	}
	if got := h.metric("reservist_outbox_depth", ""); got != 3 {
		t.Errorf("reservist_outbox_depth = %v, want 3", got)
	}
	h.run()
	h.settled("ok", 3)
	if st, err = h.ob.Stats(ctx); err != nil || st != (outbox.Stats{}) {
		t.Errorf("Stats once all are sent = %+v, %v; want zero", st, err)
	}
	if got := h.metric("reservist_outbox_depth", ""); got != 0 {
		t.Errorf("reservist_outbox_depth = %v, want 0", got)
	}
}

func testConcurrencyLimit(t *testing.T, h *harness) {
	const n, limit = 10, 3
	release := make(chan struct{})
	h.open(options{concurrency: limit})
	h.fake.Inject("", taskroutertest.Times(n, taskroutertest.Fault{Hold: release})...)
	for i := range n {
		h.put(action(uint64(i + 1)))
	}
	h.run()
	h.waitFor("calls in flight up to the limit", func() bool {
		in := 0
		for _, r := range h.fake.Requests() {
			if r.Status == 0 {
				in++
			}
		}
		return in == limit
	})
	close(release)
	h.settled("ok", n)
	if m := h.fake.MaxInFlight(); m != limit {
		t.Errorf("at most %d calls in flight at once, want %d", m, limit)
	}
}

func testIncomplete(t *testing.T, h *harness) {
	h.open(options{})
	for name, edit := range map[string]func(*outbox.Action){
		"no reservation":        func(a *outbox.Action) { a.ReservationSid = "" },
		"no task":               func(a *outbox.Action) { a.TaskSid = "" },
		"no workspace":          func(a *outbox.Action) { a.WorkspaceSid = "" },
		"no params":             func(a *outbox.Action) { a.Params = nil },
		"no deadline":           func(a *outbox.Action) { a.Deadline = time.Time{} },
		"oversized reservation": func(a *outbox.Action) { a.ReservationSid = "WR" + strings.Repeat("0", 4000) },
		"reservation of a task": func(a *outbox.Action) { a.ReservationSid = a.TaskSid },
	} {
		a := action(1)
		edit(&a)
		if queued, err := h.ob.Put(context.Background(), a); !errors.Is(err, outbox.ErrInvalidAction) || queued {
			t.Errorf("%s: queued=%v err=%v, want ErrInvalidAction", name, queued, err)
		}
	}
	if !h.put(action(1)) {
		t.Error("a valid action after refused ones was not queued")
	}
	if got := h.depth(); got != 1 {
		t.Errorf("Depth = %d after refused Puts and a good one, want 1", got)
	}
}

// A Put whose context has ended fails, and stores nothing that is carried out.
func testPutContext(t *testing.T, h *harness) {
	h.open(options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if queued, err := h.ob.Put(ctx, action(1)); err == nil || queued {
		t.Errorf("Put with its context ended: queued=%v err=%v, want an error", queued, err)
	}
	h.run()
	h.put(action(2))
	h.settled("ok", 1)
	if reqs := h.fake.Requests(); len(reqs) != 1 || reqs[0].ReservationSid != action(2).ReservationSid {
		t.Errorf("requests %v, want action 2's alone", reqs)
	}
}

// supersede calls Supersede and fails the test on an error.
func (h *harness) supersede(s outbox.Supersession) int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	n, err := h.ob.Supersede(ctx, s)
	if err != nil {
		h.t.Fatalf("Supersede(%+v): %v", s, err)
	}
	return n
}

// callsBy reads reservist_rest_calls_total{result,status_class}.
func (h *harness) callsBy(result, class string) int {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "reservist_rest_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasValue(m, result) && hasValue(m, class) {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// later is action n due in a minute: it waits for the whole test.
func later(n uint64) outbox.Action {
	a := action(n)
	a.Due = a.Received.Add(time.Minute)
	return a
}

// An action superseded by its reservation before it is due is never sent, is counted and
// logged at info with the event, and its reservation stays known; another action is carried
// out as ever.
func testSupersedeReservation(t *testing.T, h *harness) {
	h.open(options{})
	h.run()
	a := later(1)
	h.put(a)
	if n := h.supersede(outbox.Supersession{ReservationSid: a.ReservationSid, Event: "reservation.rescinded"}); n != 1 {
		t.Errorf("Supersede = %d; want 1", n)
	}
	if got := h.depth(); got != 0 {
		t.Errorf("Depth after Supersede = %d; want 0", got)
	}
	if got := h.callsBy("superseded", "none"); got != 1 {
		t.Errorf("superseded/none = %d; want 1", got)
	}
	recs := h.logs.Records("outbox action superseded")
	if len(recs) != 1 || recs[0]["level"] != "INFO" || recs[0]["event"] != "reservation.rescinded" ||
		recs[0]["reservation_sid"] != a.ReservationSid || recs[0]["task_sid"] != a.TaskSid {
		t.Errorf("superseded lines %v; want one at INFO with the event and the action's SIDs", recs)
	}
	if h.put(a) {
		t.Error("a Put after Supersede queued the reservation again")
	}
	if n := h.supersede(outbox.Supersession{ReservationSid: a.ReservationSid, Event: "reservation.rescinded"}); n != 0 {
		t.Errorf("a second Supersede = %d; want 0", n)
	}
	if n := h.supersede(outbox.Supersession{ReservationSid: action(99).ReservationSid, Event: "reservation.accepted"}); n != 0 {
		t.Errorf("Supersede of an unknown reservation = %d; want 0", n)
	}
	// The outbox still runs: an action put now is sent, and it alone.
	b := action(2)
	h.put(b)
	h.settled("ok", 1)
	if reqs := h.fake.Requests(); len(reqs) != 1 || reqs[0].ReservationSid != b.ReservationSid {
		t.Errorf("requests %v; want action 2's alone", reqs)
	}
	if got := h.calls("superseded"); got != 1 {
		t.Errorf("superseded = %d; want 1", got)
	}
}

// Superseding a task ends every pending action of it, and no other task's.
func testSupersedeTask(t *testing.T, h *harness) {
	h.open(options{})
	h.run()
	task := action(1).TaskSid
	var ours []outbox.Action
	for i := range 3 {
		a := later(uint64(i + 1)) // multi-reservation: three reservations of one task
		a.TaskSid = task
		ours = append(ours, a)
		h.put(a)
	}
	other := later(4)
	h.put(other)
	if n := h.supersede(outbox.Supersession{TaskSid: task, Event: "task.canceled"}); n != 3 {
		t.Errorf("Supersede(task) = %d; want 3", n)
	}
	if got := h.depth(); got != 1 {
		t.Errorf("Depth = %d; want 1, the other task's", got)
	}
	if got := h.calls("superseded"); got != 3 {
		t.Errorf("superseded = %d; want 3", got)
	}
	for _, a := range ours {
		if h.put(a) {
			t.Errorf("%s queued again after its task was superseded", a.ReservationSid)
		}
	}
	if n := h.supersede(outbox.Supersession{TaskSid: action(9).TaskSid, Event: "task.completed"}); n != 0 {
		t.Errorf("Supersede of an unknown task = %d; want 0", n)
	}
	if n := h.supersede(outbox.Supersession{TaskSid: other.TaskSid, Event: "task.completed"}); n != 1 {
		t.Errorf("Supersede(the other task) = %d; want 1", n)
	}
	if got := len(h.fake.Requests()); got != 0 {
		t.Errorf("%d requests; want none", got)
	}
}

// An action in flight when it is superseded finishes by its own answer.
func testSupersedeInFlight(t *testing.T, h *harness) {
	release := make(chan struct{})
	h.open(options{})
	a := action(1)
	h.fake.Inject(a.ReservationSid, taskroutertest.Fault{Hold: release})
	h.put(a)
	h.run()
	h.waitInFlight()
	if n := h.supersede(outbox.Supersession{ReservationSid: a.ReservationSid, Event: "reservation.accepted"}); n != 0 {
		t.Errorf("Supersede of an action in flight = %d; want 0", n)
	}
	close(release)
	h.settled("ok", 1)
	if got := h.calls("superseded"); got != 0 {
		t.Errorf("superseded = %d; want 0: the call in flight was sent", got)
	}
	if r, _ := h.fake.Reservation(a.ReservationSid); r.Status != "accepted" {
		t.Errorf("reservation status = %q; want accepted", r.Status)
	}
	if h.put(a) {
		t.Error("the reservation was queued again")
	}
}

// An action in flight when it is superseded, whose answer asks for a retry, ends as
// superseded instead of being tried again.
func testSupersedeInFlightRetry(t *testing.T, h *harness) {
	release := make(chan struct{})
	h.open(options{})
	a := action(1)
	h.fake.Inject(a.ReservationSid, taskroutertest.Fault{Hold: release, Status: 503})
	h.put(a)
	h.run()
	h.waitInFlight()
	if n := h.supersede(outbox.Supersession{TaskSid: a.TaskSid, Event: "task.canceled"}); n != 0 {
		t.Errorf("Supersede of an action in flight = %d; want 0", n)
	}
	close(release)
	h.settled("superseded", 1)
	if got := h.callsBy("superseded", "none"); got != 1 {
		t.Errorf("superseded/none = %d; want 1", got)
	}
	if got := h.calls("retry"); got != 1 {
		t.Errorf("retry = %d; want 1, the 503", got)
	}
	if d := cmp.Diff([]int{503}, statuses(h.fake.Requests())); d != "" {
		t.Errorf("attempts (-want +got):\n%s", d)
	}
	if recs := h.logs.Records("outbox action superseded"); len(recs) != 1 || recs[0]["event"] != "task.canceled" {
		t.Errorf("superseded lines %v; want one with the event", recs)
	}
}

// A superseded action stays superseded for the next outbox on the store.
func testSupersedeDurable(t *testing.T, h *harness) {
	ob := h.open(options{})
	a, b := action(1), action(2)
	h.put(a)
	h.put(b)
	if n := h.supersede(outbox.Supersession{ReservationSid: a.ReservationSid, Event: "reservation.timeout"}); n != 1 {
		t.Errorf("Supersede = %d; want 1", n)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	h.open(options{})
	if got := h.depth(); got != 1 {
		t.Errorf("Depth after reopening = %d; want 1", got)
	}
	if h.put(a) {
		t.Error("the superseded reservation was queued again after reopening")
	}
	h.run()
	h.settled("ok", 1)
	if reqs := h.fake.Requests(); len(reqs) != 1 || reqs[0].ReservationSid != b.ReservationSid {
		t.Errorf("requests %v; want action 2's alone", reqs)
	}
}

func testSupersedeBadInput(t *testing.T, h *harness) {
	ob := h.open(options{})
	a := action(1)
	for _, s := range []outbox.Supersession{
		{Event: "task.canceled"},
		{ReservationSid: a.ReservationSid, TaskSid: a.TaskSid},
		{ReservationSid: a.TaskSid},
		{TaskSid: "WT" + strings.Repeat("0", 4000)},
	} {
		if n, err := ob.Supersede(context.Background(), s); !errors.Is(err, outbox.ErrInvalidSupersession) || n != 0 {
			t.Errorf("Supersede(%+v) = %d, %v; want ErrInvalidSupersession", s, n, err)
		}
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Supersede(context.Background(), outbox.Supersession{ReservationSid: a.ReservationSid}); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Supersede after Close: %v; want ErrClosed", err)
	}
}

// Actions due now, superseded while the scheduler picks them: each is either sent (Supersede
// found it in flight and said 0) or superseded (Supersede said 1, and TaskRouter never saw
// it), never both, never neither.
func testSupersedeRace(t *testing.T, h *harness) {
	const n = 40
	h.open(options{})
	h.run()
	ended := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		a := action(uint64(i + 1))
		h.put(a)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			k, err := h.ob.Supersede(ctx, outbox.Supersession{ReservationSid: a.ReservationSid, Event: "reservation.accepted"})
			if err != nil {
				t.Error(err)
			}
			ended[i] = k
		})
	}
	wg.Wait()
	superseded := 0
	for _, k := range ended {
		superseded += k
	}
	h.waitFor("every action ended", func() bool {
		return h.depth() == 0 && h.calls("ok")+h.calls("superseded") == n
	})
	sent := map[string]int{}
	for _, r := range h.fake.Requests() {
		sent[r.ReservationSid]++
	}
	for i, k := range ended {
		sid := action(uint64(i + 1)).ReservationSid
		switch {
		case k == 1 && sent[sid] != 0:
			t.Errorf("%s superseded and sent %d times", sid, sent[sid])
		case k == 0 && sent[sid] != 1:
			t.Errorf("%s in flight at Supersede, sent %d times; want 1", sid, sent[sid])
		}
	}
	if got := h.calls("superseded"); got != superseded {
		t.Errorf("superseded = %d; want %d, what Supersede returned", got, superseded)
	}
	t.Logf("%d of %d superseded, %d sent", superseded, n, n-superseded)
}
