package taskrouter_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

const fallback = 120 * time.Second

// fakeClock is a clock that moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rig is Timeouts running against the fake TaskRouter on a fake clock.
type rig struct {
	*taskrouter.Timeouts
	fake  *taskroutertest.Server
	clock *fakeClock
	log   *testkit.LogBuffer
	reg   *prometheus.Registry
}

func wfSid(n uint64) string { return taskroutertest.NewSid("WW", n) }

// newRig starts Timeouts with cfg's zero fields filled in: the fake's credentials and URL,
// a 120 s fallback, the fake clock, a JSON log. It stops when the test ends.
func newRig(t *testing.T, cfg taskrouter.TimeoutsConfig) *rig {
	t.Helper()
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	t.Cleanup(fake.Close)
	r := &rig{fake: fake, clock: &fakeClock{now: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}, log: &testkit.LogBuffer{}}
	if cfg.Credentials == (taskrouter.Credentials{}) {
		cfg.Credentials = taskrouter.Credentials{AccountSid: fake.AccountSid, AuthToken: fake.AuthToken}
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = fake.URL
	}
	if cfg.Fallback == 0 {
		cfg.Fallback = fallback
	}
	cfg.Now = r.clock.Now
	cfg.Logger = slog.New(slog.NewJSONHandler(r.log, nil))
	tm, err := taskrouter.NewTimeouts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Timeouts = tm
	r.reg = prometheus.NewRegistry()
	if err := tm.Register(r.reg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tm.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return r
}

// of is the timeout of Workflow n as a callback of the fake's account names it.
func (r *rig) of(n uint64) time.Duration {
	return r.ReservationTimeout(r.clock.Now(), r.fake.AccountSid, ws, wfSid(n))
}

// workflow gives the fake Workflow n with a timeout in seconds.
func (r *rig) workflow(n uint64, seconds int) {
	r.fake.SetWorkflow(taskroutertest.Workflow{Sid: wfSid(n), WorkspaceSid: ws, TaskReservationTimeout: seconds})
}

// learn asks for Workflow n and waits until its timeout is want.
func (r *rig) learn(t *testing.T, n uint64, want time.Duration) {
	t.Helper()
	testkit.Eventually(t, fmt.Sprintf("workflow %d's timeout to be %v", n, want), func() bool { return r.of(n) == want })
}

// fetches is how many fetches of Workflow n the fake has answered.
func (r *rig) fetches(n uint64) int {
	c := 0
	for _, q := range r.fake.WorkflowRequests() {
		if strings.HasSuffix(q.Path, "/Workflows/"+wfSid(n)) && q.Status != 0 {
			c++
		}
	}
	return c
}

// waitFetches waits until the fake has answered n fetches in all.
func (r *rig) waitFetches(t *testing.T, n int) []taskroutertest.Request {
	t.Helper()
	stop := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() { close(stop) })
	defer timer.Stop()
	reqs := r.fake.WaitWorkflowRequests(stop, n)
	answered := 0
	for _, q := range reqs {
		if q.Status != 0 {
			answered++
		}
	}
	if answered < n {
		t.Fatalf("the fake answered %d Workflow fetches in 10s; want %d", answered, n)
	}
	return reqs
}

// counted is reservist_workflow_fetches_total{result}.
func (r *rig) counted(t *testing.T, result string) int {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "reservist_workflow_fetches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	t.Fatalf("no reservist_workflow_fetches_total{result=%q}", result)
	return 0
}

// waitCounted waits until n fetches have ended with result: the fetcher has kept what it
// learned.
func (r *rig) waitCounted(t *testing.T, result string, n int) {
	t.Helper()
	testkit.Eventually(t, fmt.Sprintf("%d fetches counted %s", n, result), func() bool { return r.counted(t, result) >= n })
}

// The first callback of a Workflow gets the fallback and starts a fetch; once it returns,
// the Workflow's own timeout, which is then not fetched again before the refresh. The
// learning is logged once, at info.
func TestTimeoutsLearn(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{})
	r.workflow(1, 300)
	if got := r.of(1); got != fallback {
		t.Fatalf("first ReservationTimeout = %v; want the fallback %v", got, fallback)
	}
	r.learn(t, 1, 300*time.Second)
	for range 10 {
		r.of(1)
	}
	if n := r.fetches(1); n != 1 {
		t.Errorf("fetches = %d after 12 lookups within the refresh time; want 1", n)
	}
	if n := r.Known(); n != 1 {
		t.Errorf("Known() = %d; want 1", n)
	}
	recs := r.log.Records("learned the workflow's reservation timeout: REST actions for it are abandoned after it")
	if len(recs) != 1 {
		t.Fatalf("learned lines = %d; want 1\n%s", len(recs), r.log)
	}
	if recs[0]["level"] != "INFO" || recs[0]["workflow_sid"] != wfSid(1) || recs[0]["workspace_sid"] != ws || recs[0]["timeout_seconds"] != 300.0 {
		t.Errorf("learned line = %v; want INFO with workflow_sid %s, workspace_sid %s, timeout_seconds 300", recs[0], wfSid(1), ws)
	}
	req := r.fake.WorkflowRequests()[0]
	if want := "/v1/Workspaces/" + ws + "/Workflows/" + wfSid(1); req.Method != "GET" || req.Path != want || req.User != r.fake.AccountSid {
		t.Errorf("fetch = %s %s as %q; want GET %s as %s", req.Method, req.Path, req.User, want, r.fake.AccountSid)
	}
}

// Callbacks that arrive while a Workflow's fetch is in flight get the fallback at once, and
// however many arrive together, they start one fetch.
func TestTimeoutsConcurrentMisses(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{})
	r.workflow(1, 45)
	hold := make(chan struct{})
	r.fake.InjectWorkflow(wfSid(1), taskroutertest.Fault{Hold: hold})
	var wg sync.WaitGroup
	got := make(chan time.Duration, 64)
	for range 64 {
		wg.Go(func() { got <- r.of(1) })
	}
	wg.Wait()
	close(got)
	for d := range got {
		if d != fallback {
			t.Errorf("ReservationTimeout while the fetch is held = %v; want the fallback %v", d, fallback)
		}
	}
	testkit.Eventually(t, "the fetch to reach the fake", func() bool { return len(r.fake.WorkflowRequests()) == 1 })
	if d := r.of(1); d != fallback {
		t.Errorf("ReservationTimeout while the fetch is held = %v; want the fallback %v", d, fallback)
	}
	close(hold)
	r.learn(t, 1, 45*time.Second)
	if n := len(r.fake.WorkflowRequests()); n != 1 {
		t.Errorf("fetches = %d for 66 lookups of one Workflow; want 1", n)
	}
}

// A learned timeout is fetched again once the refresh time has passed, and a change is
// taken and logged; the old value serves until the new one arrives.
func TestTimeoutsRefresh(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{Refresh: 10 * time.Minute})
	r.workflow(1, 300)
	r.learn(t, 1, 300*time.Second)
	r.workflow(1, 60)

	r.clock.Add(10*time.Minute - time.Second)
	if got := r.of(1); got != 300*time.Second {
		t.Fatalf("ReservationTimeout before the refresh = %v; want 300s", got)
	}
	if n := r.fetches(1); n != 1 {
		t.Fatalf("fetches before the refresh time = %d; want 1", n)
	}
	r.clock.Add(time.Second)
	if got := r.of(1); got != 300*time.Second {
		t.Errorf("ReservationTimeout that starts the refresh = %v; want the known 300s until it returns", got)
	}
	r.waitFetches(t, 2)
	r.learn(t, 1, 60*time.Second)
	recs := r.log.Records("the workflow's reservation timeout changed")
	if len(recs) != 1 || recs[0]["timeout_seconds"] != 60.0 || recs[0]["previous_seconds"] != 300.0 {
		t.Errorf("changed lines = %v; want one with timeout_seconds 60, previous_seconds 300", recs)
	}
	if n := len(r.log.Records("learned the workflow's reservation timeout: REST actions for it are abandoned after it")); n != 1 {
		t.Errorf("learned lines = %d; want 1: a refresh is not news", n)
	}
}

// A failed refresh keeps the known timeout; the Workflow is fetched again after a backoff
// that doubles with each failure, and honours a 429's Retry-After. Failures are logged at
// warn, at most once a minute, with what was not logged counted; the error names the URL
// the fetch went to.
func TestTimeoutsFailedFetchKeepsValue(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{BackoffBase: time.Second, BackoffMax: 4 * time.Second, Fetches: 1})
	r.workflow(1, 300)
	r.learn(t, 1, 300*time.Second)
	r.clock.Add(taskrouter.DefaultRefresh)

	r.fake.InjectWorkflow(wfSid(1), taskroutertest.Fault{Status: 500}, taskroutertest.Fault{Status: 503},
		taskroutertest.Fault{Status: 429, RetryAfter: "30"}, taskroutertest.Fault{Status: 502})
	// Each failure waits: 1 s, 2 s, then 30 s for the 429 (over the 4 s the backoff would
	// be), then the 4 s ceiling; a lookup at its end starts the next fetch. A lookup within
	// the wait starts nothing: with one fetcher, fetches run in the order they were asked
	// for, so once another Workflow asked for after it has been fetched, a fetch it started
	// would have been counted.
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 30 * time.Second, 4 * time.Second} {
		if got := r.of(1); got != 300*time.Second {
			t.Fatalf("ReservationTimeout that starts fetch %d = %v; want the known 300s", i+2, got)
		}
		r.waitCounted(t, "error", i+1)
		r.clock.Add(wait - time.Millisecond)
		for range 3 {
			if got := r.of(1); got != 300*time.Second {
				t.Fatalf("ReservationTimeout after failure %d = %v; want the known 300s", i+1, got)
			}
		}
		sentinel := uint64(10 + i)
		r.workflow(sentinel, 1)
		r.learn(t, sentinel, time.Second)
		if n, errs := r.fetches(1), r.counted(t, "error"); n != i+2 || errs != i+1 {
			t.Fatalf("within the wait after failure %d: %d fetches, %d failed; want %d and %d", i+1, n, errs, i+2, i+1)
		}
		r.clock.Add(time.Millisecond)
	}
	// The fifth fetch succeeds: no more faults.
	r.workflow(1, 200)
	r.learn(t, 1, 200*time.Second)
	if n := r.fetches(1); n != 6 {
		t.Errorf("fetches = %d; want 6: the first, four failures each after its wait, the fifth", n)
	}

	warns := r.log.Records(failedLine)
	if len(warns) != 1 {
		t.Fatalf("warn lines = %d for four failures within a minute; want 1\n%s", len(warns), r.log)
	}
	w := warns[0]
	if w["level"] != "WARN" || w["workflow_sid"] != wfSid(1) || w["timeout_seconds"] != 300.0 || w["failures"] != 1.0 ||
		!strings.Contains(w["error"].(string), "taskrouter answered 500") {
		t.Errorf("warn line = %v; want WARN, workflow_sid, timeout_seconds 300, failures 1, the 500", w)
	}

	// A minute after the last line, the next failure is logged with the count of those
	// that were not.
	r.clock.Add(taskrouter.DefaultRefresh)
	r.fake.InjectWorkflow(wfSid(1), taskroutertest.Fault{Status: 500})
	r.of(1)
	r.waitCounted(t, "error", 5)
	if w := r.log.Records(failedLine); len(w) != 2 || w[1]["failures_not_logged"] != 3.0 {
		t.Errorf("warn lines = %v; want a second one, with failures_not_logged 3", w)
	}
	if got := r.of(1); got != 200*time.Second {
		t.Errorf("ReservationTimeout after a failed refresh = %v; want the known 200s", got)
	}
}

// A fetch that reaches nothing is logged with the URL it went to, the base URL's, not the
// https://taskrouter.twilio.com twilio-go builds it on.
func TestTimeoutsErrorNamesBaseURL(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	base := gone.URL + "/egress"
	gone.Close()
	r := newRig(t, taskrouter.TimeoutsConfig{BaseURL: base})
	if got := r.of(1); got != fallback {
		t.Fatalf("ReservationTimeout = %v; want the fallback", got)
	}
	r.waitCounted(t, "error", 1)
	w := r.log.Records(failedLine)
	if len(w) != 1 {
		t.Fatalf("warn lines = %d; want 1\n%s", len(w), r.log)
	}
	want := base + "/v1/Workspaces/" + ws + "/Workflows/" + wfSid(1)
	if e := w[0]["error"].(string); !strings.Contains(e, strconv.Quote(want)) || strings.Contains(e, "taskrouter.twilio.com") {
		t.Errorf("error = %q; want it to name %q, not taskrouter.twilio.com", e, want)
	}
}

const failedLine = "cannot fetch the workflow's reservation timeout; its REST actions keep the timeout shown, which is --reservation-timeout until the workflow's own is known"

// A Workflow TaskRouter does not know (or that is another Workspace's) keeps the fallback,
// and a value outside 1..86,400 s is not taken.
func TestTimeoutsUnknownWorkflow(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{})
	if got := r.of(9); got != fallback {
		t.Fatalf("ReservationTimeout = %v; want the fallback", got)
	}
	r.waitFetches(t, 1)
	testkit.Eventually(t, "the 404 to be logged", func() bool { return len(r.log.Records(failedLine)) == 1 })
	w := r.log.Records(failedLine)[0]
	if e := w["error"].(string); !strings.Contains(e, "taskrouter answered 404: twilio error 20404") || w["timeout_seconds"] != 120.0 {
		t.Errorf("warn line = %v; want the 404 with code 20404 and timeout_seconds 120 (the fallback)", w)
	}
	if got := r.of(9); got != fallback {
		t.Errorf("ReservationTimeout after the 404 = %v; want the fallback", got)
	}
	if n := r.Known(); n != 0 {
		t.Errorf("Known() = %d; want 0", n)
	}
}

// SIDs come from callbacks: only valid Workspace and Workflow SIDs of the configured
// account are fetched; anything else gets the fallback and costs nothing.
func TestTimeoutsInvalidSidsNotFetched(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{Fetches: 1}) // one fetcher: fetches in order
	r.workflow(1, 300)
	acct := r.fake.AccountSid
	for _, c := range []struct{ account, workspace, workflow string }{
		{taskroutertest.NewSid("AC", 99), ws, wfSid(1)}, // another account's callback
		{"", ws, wfSid(1)},
		{acct, "", wfSid(1)},
		{acct, ws, ""},
		{acct, "WS123", wfSid(1)},
		{acct, ws, "WW" + strings.Repeat("g", 32)},
		{acct, ws, wfSid(1)[:33]},
		{acct, ws, wfSid(1) + "0"},
		{acct, ws, taskroutertest.NewSid("WQ", 1)},
		{acct, taskroutertest.NewSid("WW", 1), wfSid(1)},
		{acct, ws, "../../Workers/" + wfSid(1)},
		{acct, ws + "/Tasks/x", wfSid(1)},
	} {
		if got := r.ReservationTimeout(r.clock.Now(), c.account, c.workspace, c.workflow); got != fallback {
			t.Errorf("ReservationTimeout(%q, %q, %q) = %v; want the fallback", c.account, c.workspace, c.workflow, got)
		}
	}
	r.learn(t, 1, 300*time.Second)
	reqs := r.fake.WorkflowRequests()
	if len(reqs) != 1 {
		t.Errorf("fetches = %v; want only the valid Workflow's", reqs)
	}
	// Upper-case hex is a valid SID too.
	upper := "WW" + strings.Repeat("AB", 16)
	r.fake.SetWorkflow(taskroutertest.Workflow{Sid: upper, WorkspaceSid: ws, TaskReservationTimeout: 7})
	testkit.Eventually(t, "the upper-case Workflow to be learned", func() bool { return r.ReservationTimeout(r.clock.Now(), acct, ws, upper) == 7*time.Second })
}

// Without REST credentials nothing is fetched: every Workflow has the fallback.
func TestTimeoutsWithoutCredentials(t *testing.T) {
	tm, err := taskrouter.NewTimeouts(taskrouter.TimeoutsConfig{Credentials: taskrouter.Credentials{AuthToken: taskroutertest.DefaultAuthToken}, Fallback: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tm.Run(ctx) }()
	if got := tm.ReservationTimeout(time.Now(), taskroutertest.DefaultAccountSid, ws, wfSid(1)); got != 90*time.Second {
		t.Errorf("ReservationTimeout = %v; want the fallback 90s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if _, err := taskrouter.NewTimeouts(taskrouter.TimeoutsConfig{}); err == nil || !strings.Contains(err.Error(), "--reservation-timeout") {
		t.Errorf("NewTimeouts without a fallback = %v; want an error naming --reservation-timeout", err)
	}
	_, err = taskrouter.NewTimeouts(taskrouter.TimeoutsConfig{Fallback: time.Second, BaseURL: "ftp://x",
		Credentials: taskrouter.Credentials{AccountSid: taskroutertest.DefaultAccountSid, AuthToken: taskroutertest.DefaultAuthToken}})
	if err == nil || !strings.Contains(err.Error(), "--twilio-base-url") {
		t.Errorf("NewTimeouts with an ftp base URL = %v; want an error naming --twilio-base-url", err)
	}
}

// The cache holds at most MaxWorkflows Workflows: a new one takes the place of the one
// fetched least recently, which is fetched again when a callback names it.
func TestTimeoutsCacheBound(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{MaxWorkflows: 3, Fetches: 1})
	for n := range uint64(5) {
		r.workflow(n+1, int(10*(n+1)))
	}
	for n := range uint64(3) {
		r.learn(t, n+1, time.Duration(10*(n+1))*time.Second)
		r.clock.Add(time.Second)
	}
	r.learn(t, 4, 40*time.Second) // takes workflow 1's place
	if n := r.Known(); n != 3 {
		t.Errorf("Known() = %d; want 3, the bound", n)
	}
	for n, want := range map[uint64]time.Duration{2: 20 * time.Second, 3: 30 * time.Second, 4: 40 * time.Second} {
		if got := r.of(n); got != want {
			t.Errorf("workflow %d: ReservationTimeout = %v; want %v, still known", n, got, want)
		}
	}
	if got := r.of(1); got != fallback {
		t.Errorf("evicted workflow 1: ReservationTimeout = %v; want the fallback until fetched again", got)
	}
	r.learn(t, 1, 10*time.Second) // takes workflow 2's place
	if got := r.of(2); got != fallback {
		t.Errorf("workflow 2, now the least recently fetched: ReservationTimeout = %v; want the fallback", got)
	}
	if n := r.fetches(1); n != 2 {
		t.Errorf("fetches of workflow 1 = %d; want 2 (before and after its eviction)", n)
	}
	testkit.Eventually(t, "workflow 2 to be learned again", func() bool { return r.of(2) == 20*time.Second })
	if n := r.Known(); n != 3 {
		t.Errorf("Known() = %d; want 3, the bound", n)
	}
}

// At most Fetches fetches are in flight at once, however many Workflows are missed.
func TestTimeoutsFetchConcurrency(t *testing.T) {
	r := newRig(t, taskrouter.TimeoutsConfig{Fetches: 2})
	hold := make(chan struct{})
	for n := range uint64(6) {
		r.workflow(n+1, 30)
		r.fake.InjectWorkflow(wfSid(n+1), taskroutertest.Fault{Hold: hold})
		r.of(n + 1)
	}
	testkit.Eventually(t, "two fetches to be held", func() bool { return len(r.fake.WorkflowRequests()) == 2 })
	close(hold)
	for n := range uint64(6) {
		r.learn(t, n+1, 30*time.Second)
	}
	if got := r.fake.MaxWorkflowsInFlight(); got != 2 {
		t.Errorf("fetches in flight at once = %d; want 2", got)
	}
}

// The lookup a callback makes for a Workflow whose timeout is known.
func BenchmarkTimeoutsHit(b *testing.B) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	fake.SetWorkflow(taskroutertest.Workflow{Sid: wfSid(1), WorkspaceSid: ws, TaskReservationTimeout: 300})
	tm, err := taskrouter.NewTimeouts(taskrouter.TimeoutsConfig{Fallback: fallback, BaseURL: fake.URL,
		Credentials: taskrouter.Credentials{AccountSid: fake.AccountSid, AuthToken: fake.AuthToken}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tm.Run(ctx)
	testkit.Eventually(b, "the workflow to be learned", func() bool {
		return tm.ReservationTimeout(time.Now(), fake.AccountSid, ws, wfSid(1)) == 300*time.Second
	})
	acct, wf, now := fake.AccountSid, wfSid(1), time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if tm.ReservationTimeout(now, acct, ws, wf) != 300*time.Second {
				b.Fatal("not a hit")
			}
		}
	})
}

// The worst lookup a callback can make: a Workflow never seen, with the cache full (one is
// evicted) and the fetch queue full (no fetch starts).
func BenchmarkTimeoutsMissAtBound(b *testing.B) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	tm, err := taskrouter.NewTimeouts(taskrouter.TimeoutsConfig{Fallback: fallback, BaseURL: gone.URL,
		Credentials: taskrouter.Credentials{AccountSid: taskroutertest.DefaultAccountSid, AuthToken: taskroutertest.DefaultAuthToken}})
	if err != nil {
		b.Fatal(err)
	}
	// No Run: nothing takes from the queue.
	sids := make([]string, 4*taskrouter.DefaultMaxWorkflows)
	for i := range sids {
		sids[i] = wfSid(uint64(i + 1))
	}
	now := time.Now()
	for _, sid := range sids[:taskrouter.DefaultMaxWorkflows] {
		tm.ReservationTimeout(now, taskroutertest.DefaultAccountSid, ws, sid)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tm.ReservationTimeout(now, taskroutertest.DefaultAccountSid, ws, sids[taskrouter.DefaultMaxWorkflows+i%(3*taskrouter.DefaultMaxWorkflows)])
	}
}
