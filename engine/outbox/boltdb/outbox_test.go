package boltdb_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/boltdb"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// fakeClock is a virtual clock that jumps forward whenever the outbox waits:
// After(d) advances the time by d and fires at once. The outbox's scheduler
// is the only goroutine that waits, so this is the time it would have slept,
// skipped. Every wait is recorded for assertions.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(max(d, 0))
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// logBuffer collects log output from several goroutines.
type logBuffer = testkit.LogBuffer

// options are what a test opens an outbox with: the carrier's and the outbox's.
type options struct {
	Sender                  outbox.Sender
	Concurrency             int
	BackoffBase, BackoffMax time.Duration
	Drain                   time.Duration
	CheckEvery, StuckAfter  time.Duration
}

// harness is an outbox wired to a fake TaskRouter.
type harness struct {
	t     *testing.T
	fake  *taskroutertest.Server
	clock *fakeClock
	reg   *prometheus.Registry
	logs  *logBuffer
	dir   string
	ob    *boltdb.Outbox
}

const (
	ws = "WS00000000000000000000000000000001"
	wk = "WK00000000000000000000000000000003"
)

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, fake: taskroutertest.NewServer(taskroutertest.Config{}), clock: newClock(), logs: &logBuffer{}, dir: t.TempDir()}
	t.Cleanup(h.fake.Close)
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), h.fake.AuthToken) {
			t.Error("the auth token appears in the logs")
		}
	})
	return h
}

func (h *harness) sender(token string) *taskrouter.Sender {
	h.t.Helper()
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
	return s
}

// open opens the outbox in h.dir with a fresh registry; no sender makes it dry-run.
func (h *harness) open(opts options) *boltdb.Outbox {
	h.t.Helper()
	h.reg = prometheus.NewRegistry()
	metrics := outbox.NewMetrics()
	if err := metrics.Register(h.reg); err != nil {
		h.t.Fatal(err)
	}
	carrier := outbox.NewCarrier(outbox.CarrierOptions{
		Sender:      opts.Sender,
		Logger:      slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:     metrics,
		Clock:       h.clock,
		BackoffBase: opts.BackoffBase,
		BackoffMax:  opts.BackoffMax,
	})
	ob, err := boltdb.Open(h.dir, boltdb.Options{Carrier: carrier, Concurrency: opts.Concurrency, Drain: opts.Drain,
		CheckEvery: opts.CheckEvery, StuckAfter: opts.StuckAfter})
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

// run starts Run and stops it at cleanup, checking that it returned nil.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ob := h.ob
	go func() { errc <- ob.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			h.t.Error("Run did not return after cancel")
		}
	})
}

// action is an accept for reservation n, received now, due now, with the
// default two-minute deadline.
func (h *harness) action(n uint64) outbox.Action {
	now := h.clock.Now()
	return outbox.Action{
		ReservationSid: taskroutertest.NewSid("WR", n),
		TaskSid:        taskroutertest.NewSid("WT", n),
		WorkspaceSid:   ws,
		WorkerSid:      wk,
		Rule:           "chat-and-sms",
		Params:         outbox.Params{"ReservationStatus": "accepted"},
		Received:       now,
		Due:            now,
		Deadline:       now.Add(120 * time.Second),
	}
}

func (h *harness) put(a outbox.Action) bool {
	h.t.Helper()
	queued, err := h.ob.Put(context.Background(), a)
	if err != nil {
		h.t.Fatalf("Put: %v", err)
	}
	return queued
}

// calls reads reservist_rest_calls_total{result}.
func (h *harness) calls(result string) int {
	h.t.Helper()
	return int(h.metric("reservist_rest_calls_total", result))
}

// metric reads a gauge, a counter with the given result label (or op; summed
// over the other labels, such as status_class), or a
// histogram's sample count from the registry.
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

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func statuses(reqs []taskroutertest.Request) []int {
	var out []int
	for _, r := range reqs {
		out = append(out, r.Status)
	}
	return out
}

func TestRetryAfterThenUnavailableThenOK(t *testing.T) {
	h := newHarness(t)
	h.open(options{Sender: h.sender(""), BackoffBase: 500 * time.Millisecond, BackoffMax: 10 * time.Second})
	a := h.action(1)
	a.Params = outbox.Params{"Instruction": "call", "CallFrom": "+15005550006", "CallTo": "+15551230000",
		"CallUrl": "https://example.com/twiml/agent-answer", "CallAccept": true}
	h.fake.Inject(a.ReservationSid,
		taskroutertest.Fault{Status: 429, RetryAfter: "1"},
		taskroutertest.Fault{Status: 503})
	if !h.put(a) {
		t.Fatal("Put did not queue")
	}
	h.run()
	waitFor(t, "the action to be sent", func() bool { return h.calls("ok") == 1 })

	reqs := h.fake.RequestsFor(a.ReservationSid)
	if d := cmp.Diff([]int{429, 503, 200}, statuses(reqs)); d != "" {
		t.Fatalf("attempts (-want +got):\n%s", d)
	}
	for _, r := range reqs {
		if d := cmp.Diff(a.Params.Form(), r.Form); d != "" {
			t.Errorf("form (-want +got):\n%s", d)
		}
	}
	waits := h.clock.Waits()
	if len(waits) != 2 {
		t.Fatalf("waits = %v, want two", waits)
	}
	if waits[0] != time.Second {
		t.Errorf("wait after 429 = %v, want Retry-After's 1s", waits[0])
	}
	// Second retry: full jitter under min(max, base·2¹) = 1s.
	if waits[1] <= 0 || waits[1] > time.Second {
		t.Errorf("wait after 503 = %v, want in (0, 1s]", waits[1])
	}
	if got := h.calls("retry"); got != 2 {
		t.Errorf("retry count = %d, want 2", got)
	}
	if got := h.metric("reservist_rest_success_delay_seconds", ""); got != 1 {
		t.Errorf("success delay samples = %v, want 1", got)
	}
	if h.ob.Depth() != 0 {
		t.Errorf("Depth = %d, want 0", h.ob.Depth())
	}
	if r, _ := h.fake.Reservation(a.ReservationSid); r.Status != "accepted" {
		t.Errorf("reservation status = %q, want accepted", r.Status)
	}
}

func TestBurstOfPuts(t *testing.T) {
	const n = 500
	h := newHarness(t)
	h.open(options{Sender: h.sender(""), Concurrency: 8})
	h.run()

	var wg sync.WaitGroup
	var queued sync.Map
	for i := range n {
		wg.Add(2)
		for range 2 { // every reservation twice, concurrently
			go func() {
				defer wg.Done()
				ok, err := h.ob.Put(context.Background(), h.action(uint64(i+1)))
				if err != nil {
					t.Error(err)
				}
				if ok {
					if _, dup := queued.LoadOrStore(i, true); dup {
						t.Errorf("reservation %d queued twice", i)
					}
				}
			}()
		}
	}
	wg.Wait()
	waitFor(t, "every action to be sent", func() bool { return h.calls("ok") == n && h.ob.Depth() == 0 })

	seen := map[string]int{}
	for _, r := range h.fake.Requests() {
		if r.Status != 200 {
			t.Errorf("%s answered %d", r.ReservationSid, r.Status)
		}
		seen[r.ReservationSid]++
	}
	if len(seen) != n {
		t.Errorf("%d reservations updated, want %d", len(seen), n)
	}
	for sid, c := range seen {
		if c != 1 {
			t.Errorf("%s sent %d times", sid, c)
		}
	}
	if m := h.fake.MaxInFlight(); m > 8 {
		t.Errorf("%d calls in flight at once, want at most 8", m)
	}
}

func TestPastDeadlineAbandoned(t *testing.T) {
	t.Run("already past at Put", func(t *testing.T) {
		h := newHarness(t)
		h.open(options{Sender: h.sender("")})
		a := h.action(1)
		a.Received = a.Received.Add(-3 * time.Minute)
		a.Due = a.Received
		a.Deadline = a.Received.Add(2 * time.Minute)
		h.put(a)
		h.run()
		waitFor(t, "abandonment", func() bool { return h.calls("abandoned") == 1 && h.ob.Depth() == 0 })
		if got := len(h.fake.Requests()); got != 0 {
			t.Errorf("%d requests for an expired reservation", got)
		}
	})

	t.Run("retries run out", func(t *testing.T) {
		h := newHarness(t)
		h.open(options{Sender: h.sender(""), BackoffBase: time.Second, BackoffMax: 4 * time.Second})
		a := h.action(1)
		a.Deadline = a.Received.Add(10 * time.Second)
		h.fake.Inject(a.ReservationSid, taskroutertest.Times(1000, taskroutertest.Fault{Status: 503})...)
		h.put(a)
		h.run()
		waitFor(t, "abandonment", func() bool { return h.calls("abandoned") == 1 && h.ob.Depth() == 0 })
		attempts := len(h.fake.Requests())
		if attempts < 2 {
			t.Errorf("%d attempts, want retries before giving up", attempts)
		}
		if got := h.calls("retry"); got != attempts-1 {
			t.Errorf("retry count %d, want %d (every attempt but the last)", got, attempts-1)
		}
		if now := h.clock.Now(); now.After(a.Deadline) {
			t.Errorf("outbox waited until %v, past the deadline %v", now, a.Deadline)
		}
		if !strings.Contains(h.logs.String(), "outbox action abandoned") {
			t.Error("abandonment not logged")
		}
	})
}

func TestReopenSendsPendingOnce(t *testing.T) {
	h := newHarness(t)
	ob := h.open(options{Sender: h.sender("")})
	for i := range 3 {
		h.put(h.action(uint64(i + 1)))
	}
	expired := h.action(9)
	expired.Deadline = expired.Received.Add(time.Second)
	h.put(expired)
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Put(context.Background(), h.action(4)); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}

	h.clock.After(5 * time.Second) // reservist was down for a while
	ob = h.open(options{Sender: h.sender("")})
	if got := ob.Depth(); got != 3 {
		t.Fatalf("Depth after reopen = %d, want 3", got)
	}
	if got := h.calls("abandoned"); got != 1 {
		t.Errorf("abandoned at open = %d, want 1", got)
	}
	if h.put(h.action(2)) {
		t.Error("a pending action from before the restart was queued again")
	}
	h.run()
	waitFor(t, "the resumed actions", func() bool { return h.calls("ok") == 3 && ob.Depth() == 0 })
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

func TestForgottenAfterDeadline(t *testing.T) {
	h := newHarness(t)
	h.open(options{Sender: h.sender("")})
	a := h.action(1)
	h.put(a)
	h.run()
	waitFor(t, "the action to be sent", func() bool { return h.calls("ok") == 1 })
	if h.put(a) {
		t.Fatal("duplicate queued before the deadline")
	}
	h.clock.After(121 * time.Second) // the reservation's deadline passes
	b := h.action(1)                 // same reservation, new callback, new deadline
	if !h.put(b) {
		t.Fatal("reservation still remembered after its deadline")
	}
	waitFor(t, "the second action", func() bool { return h.calls("superseded") == 1 })
	// TaskRouter itself refuses the second update: the reservation is
	// no longer pending.
	if d := cmp.Diff([]int{200, 400}, statuses(h.fake.Requests())); d != "" {
		t.Errorf("attempts (-want +got):\n%s", d)
	}
}

func TestDepthAndDelay(t *testing.T) {
	h := newHarness(t)
	sent := make(chan time.Time, 3)
	h.open(options{Sender: senderFunc(func(ctx context.Context, a outbox.Action) error {
		sent <- h.clock.Now()
		return nil
	})})
	var due []time.Time
	for i, delay := range []time.Duration{0, 2 * time.Second, 5 * time.Second} {
		a := h.action(uint64(i + 1))
		a.Due = a.Received.Add(delay)
		due = append(due, a.Due)
		h.put(a)
	}
	if got := h.ob.Depth(); got != 3 {
		t.Fatalf("Depth = %d, want 3", got)
	}
	if got := h.metric("reservist_outbox_depth", ""); got != 3 {
		t.Fatalf("reservist_outbox_depth = %v, want 3", got)
	}
	h.run()
	for i := range 3 {
		at := <-sent
		if at.Before(due[i]) {
			t.Errorf("action %d sent at %v, before it was due at %v", i, at, due[i])
		}
	}
	waitFor(t, "depth 0", func() bool { return h.ob.Depth() == 0 })
	if got := h.metric("reservist_outbox_depth", ""); got != 0 {
		t.Errorf("reservist_outbox_depth = %v, want 0", got)
	}
}

// TestSurvivesKill puts actions in a child process that is then killed with
// SIGKILL, and checks that they are carried out after a restart.
func TestSurvivesKill(t *testing.T) {
	if os.Getenv("OUTBOX_KILL_CHILD_DIR") != "" {
		return // the child is run through TestKillChild
	}
	h := newHarness(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
	cmd.Env = append(os.Environ(), "OUTBOX_KILL_CHILD_DIR="+h.dir,
		"OUTBOX_KILL_CHILD_NOW="+h.clock.Now().Format(time.RFC3339Nano))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "queued ") {
				ready <- sc.Text()
				return
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			t.Fatal("child exited without queueing")
		}
		if line != "queued 5" {
			t.Fatalf("child said %q", line)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child did not queue in time")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no Close, no cleanup
		t.Fatal(err)
	}
	_ = cmd.Wait()

	ob := h.open(options{Sender: h.sender("")})
	if got := ob.Depth(); got != 5 {
		t.Fatalf("Depth after kill = %d, want 5", got)
	}
	h.run()
	waitFor(t, "the actions to be sent", func() bool { return h.calls("ok") == 5 })
	if got := len(h.fake.Requests()); got != 5 {
		t.Errorf("%d requests, want 5", got)
	}
}

// TestKillChild is the child process of TestSurvivesKill: it queues five
// actions, says so, and waits to be killed.
func TestKillChild(t *testing.T) {
	dir := os.Getenv("OUTBOX_KILL_CHILD_DIR")
	if dir == "" {
		t.Skip("child process of TestSurvivesKill")
	}
	now, err := time.Parse(time.RFC3339Nano, os.Getenv("OUTBOX_KILL_CHILD_NOW"))
	if err != nil {
		t.Fatal(err)
	}
	clock := newClock()
	clock.now = now
	ob, err := boltdb.Open(dir, boltdb.Options{Carrier: outbox.NewCarrier(outbox.CarrierOptions{Clock: clock})})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clock: clock, ob: ob}
	for i := range 5 {
		h.put(h.action(uint64(i + 1)))
	}
	fmt.Println("queued " + strconv.Itoa(ob.Depth()))
	time.Sleep(time.Minute) // killed here by the parent
}

// senderFunc adapts a function to outbox.Sender.
type senderFunc func(ctx context.Context, a outbox.Action) error

func (f senderFunc) Send(ctx context.Context, a outbox.Action) error { return f(ctx, a) }
