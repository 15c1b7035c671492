package taskrouter

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twilio/twilio-go/client"
	trv1 "github.com/twilio/twilio-go/rest/taskrouter/v1"

	"github.com/reservist/reservist/engine/outbox"
)

// Defaults of TimeoutsConfig.
const (
	DefaultRefresh      = 10 * time.Minute
	DefaultMaxWorkflows = 1024
	DefaultFetches      = 2
	DefaultBackoffBase  = time.Second
	DefaultBackoffMax   = 5 * time.Minute
	// DefaultWarnEvery is how often, at most, a failed fetch is logged.
	DefaultWarnEvery = time.Minute
)

// MaxTaskReservationTimeout is the longest TaskReservationTimeout a Workflow can have, in
// seconds (24 hours); the shortest is 1.
const MaxTaskReservationTimeout = 86400

// fetchQueue is how many fetches may wait for a free fetcher. A miss that finds it full
// starts none: the next callback naming the Workflow tries again.
const fetchQueue = 64

// TimeoutsConfig configures Timeouts.
type TimeoutsConfig struct {
	// Credentials are the account's: without REST credentials nothing is fetched and every
	// Workflow has the Fallback timeout. Only callbacks naming Credentials.AccountSid have
	// their Workflow fetched.
	Credentials Credentials
	// BaseURL is --twilio-base-url, as Config.BaseURL.
	BaseURL string
	// Fallback is --reservation-timeout: the timeout of a Workflow until its own is known.
	Fallback time.Duration
	// Refresh is how old a learned timeout may get before a callback naming the Workflow
	// fetches it again; default DefaultRefresh.
	Refresh time.Duration
	// MaxWorkflows bounds how many Workflows are remembered; default DefaultMaxWorkflows.
	MaxWorkflows int
	// Fetches bounds the fetches in flight at once; default DefaultFetches.
	Fetches int
	// Timeout bounds one fetch; default DefaultTimeout.
	Timeout time.Duration
	// BackoffBase and BackoffMax space the fetches of a Workflow whose fetch failed: the
	// n-th failure in a row (from 1) waits min(BackoffMax, BackoffBase·2ⁿ⁻¹), or longer
	// when a 429 says so. Defaults DefaultBackoffBase and DefaultBackoffMax.
	BackoffBase, BackoffMax time.Duration
	// WarnEvery is how often, at most, a failed fetch is logged; default DefaultWarnEvery.
	WarnEvery time.Duration
	// Logger says what is learned and what fails; default discards it.
	Logger *slog.Logger
	// Now is the clock of the fetches; default time.Now.
	Now func() time.Time
}

// Timeouts knows each Workflow's TaskReservationTimeout, which TaskRouter sets per Workflow
// and which bounds the life of the reservations it makes. It learns them through twilio-go's
// FetchWorkflow, in the background: ReservationTimeout never waits for TaskRouter. The
// first callbacks of a Workflow (until its fetch returns, after each start) get the
// fallback, --reservation-timeout. It is safe for concurrent use; Run does the fetching.
type Timeouts struct {
	fallback  time.Duration
	account   string
	api       *trv1.ApiService // nil: no REST credentials
	transport *transport
	calls     sync.Map // workflow SID → *call, for the transport

	refresh, timeout        time.Duration
	backoffBase, backoffMax time.Duration
	max, fetches            int
	now                     func() time.Time
	log                     *slog.Logger
	warns                   sampler

	queue chan workflowKey

	mu      sync.RWMutex
	entries map[workflowKey]*workflowEntry
	order   *list.List // of workflowKey, the least recently fetched first

	fetched *prometheus.CounterVec
	known   prometheus.GaugeFunc
}

// workflowKey names a Workflow: its Workspace is part of its URL.
type workflowKey struct{ workspace, workflow string }

// workflowEntry is what is known of one Workflow; Timeouts.mu guards it.
type workflowEntry struct {
	timeout  time.Duration // 0 until learned
	next     time.Time     // when a callback may start the next fetch
	el       *list.Element // its place in Timeouts.order
	failures int           // failed fetches in a row
	pending  bool          // a fetch is queued or in flight
}

// NewTimeouts returns Timeouts for cfg. cfg.Fallback must be positive; a BaseURL that is
// not http(s)://host[:port][/path] is an error naming --twilio-base-url.
func NewTimeouts(cfg TimeoutsConfig) (*Timeouts, error) {
	if cfg.Fallback <= 0 {
		return nil, fmt.Errorf("--reservation-timeout %v: must be positive", cfg.Fallback)
	}
	t := &Timeouts{
		fallback:    cfg.Fallback,
		account:     cfg.Credentials.AccountSid,
		refresh:     orDefault(cfg.Refresh, DefaultRefresh),
		timeout:     orDefault(cfg.Timeout, DefaultTimeout),
		backoffBase: orDefault(cfg.BackoffBase, DefaultBackoffBase),
		backoffMax:  orDefault(cfg.BackoffMax, DefaultBackoffMax),
		max:         cfg.MaxWorkflows,
		fetches:     cfg.Fetches,
		now:         cfg.Now,
		log:         cfg.Logger,
		warns:       sampler{every: orDefault(cfg.WarnEvery, DefaultWarnEvery)},
		queue:       make(chan workflowKey, fetchQueue),
		entries:     make(map[workflowKey]*workflowEntry),
		order:       list.New(),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_workflow_fetches_total",
			Help: "Fetches of a Workflow's TaskReservationTimeout from TaskRouter, by result (ok, error).",
		}, []string{"result"}),
	}
	t.known = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "reservist_workflow_timeouts_known",
		Help: "Workflows whose TaskReservationTimeout is known; the others' REST actions get --reservation-timeout.",
	}, func() float64 { return float64(t.Known()) })
	for _, r := range []string{"ok", "error"} {
		t.fetched.WithLabelValues(r)
	}
	if t.max <= 0 {
		t.max = DefaultMaxWorkflows
	}
	if t.fetches <= 0 {
		t.fetches = DefaultFetches
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.backoffMax = max(t.backoffMax, t.backoffBase)
	if cfg.Credentials.REST() {
		api, tr, err := restAPI(cfg.Credentials, cfg.BaseURL, &t.calls)
		if err != nil {
			return nil, err
		}
		t.api, t.transport = api, tr
	}
	return t, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ReservationTimeout is the TaskReservationTimeout of the Workflow a callback that arrived
// at now names, as the callback names it: the Workflow's own once it is known, else the
// fallback. A Workflow not known, or known for longer than the refresh time, has one fetch
// started in the background — only for valid Workspace and Workflow SIDs of the configured
// account, since they come from the callback. It never waits for the fetch. now is the
// caller's, who has read the clock already: reading it again would be half the cost.
func (t *Timeouts) ReservationTimeout(now time.Time, accountSid, workspaceSid, workflowSid string) time.Duration {
	if t.api == nil || (accountSid != t.account && !strings.EqualFold(accountSid, t.account)) {
		return t.fallback
	}
	k := workflowKey{workspaceSid, workflowSid}
	t.mu.RLock()
	e := t.entries[k]
	var d time.Duration
	due := true
	if e != nil {
		d, due = e.timeout, !e.pending && !now.Before(e.next)
	}
	t.mu.RUnlock()
	if due {
		t.start(k, e == nil, now)
	}
	if d == 0 {
		return t.fallback
	}
	return d
}

// start queues a fetch of k unless one is pending or not yet due; a new k is checked by
// shape and takes the place of the least recently fetched Workflow when the cache is full
// (one never fetched counts as fetched when it was first seen).
func (t *Timeouts) start(k workflowKey, isNew bool, now time.Time) {
	if isNew && (!outbox.ValidSid("WS", k.workspace) || !outbox.ValidSid("WW", k.workflow)) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[k]
	if e == nil {
		if len(t.entries) >= t.max && !t.evict() {
			return
		}
		e = &workflowEntry{el: t.order.PushBack(k)}
		t.entries[k] = e
	}
	if e.pending || now.Before(e.next) {
		return // another callback got here first
	}
	select {
	case t.queue <- k:
		e.pending = true
		t.order.MoveToBack(e.el)
	default:
		// Every fetcher is busy and the queue full: a later callback tries again.
	}
}

// evict forgets the Workflow fetched least recently that has no fetch pending, to make
// room; the caller holds t.mu. The pending ones, which it passes over, are at most the
// queue and the fetchers.
func (t *Timeouts) evict() bool {
	for el := t.order.Front(); el != nil; el = el.Next() {
		k := el.Value.(workflowKey)
		if !t.entries[k].pending {
			t.order.Remove(el)
			delete(t.entries, k)
			return true
		}
	}
	return false
}

// Known is how many Workflows' timeouts are known.
func (t *Timeouts) Known() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for _, e := range t.entries {
		if e.timeout > 0 {
			n++
		}
	}
	return n
}

// Run fetches the Workflows that ReservationTimeout asks for, at most Fetches at once,
// until ctx is done; a fetch in flight then ends at once.
func (t *Timeouts) Run(ctx context.Context) error {
	if t.api == nil {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	for range t.fetches {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case k := <-t.queue:
					t.fetch(ctx, k)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// fetch asks TaskRouter for one Workflow and keeps what it learns.
func (t *Timeouts) fetch(run context.Context, k workflowKey) {
	ctx, cancel := context.WithTimeout(run, t.timeout)
	c := &call{ctx: ctx}
	t.calls.Store(k.workflow, c)
	wf, err := t.api.FetchWorkflow(k.workspace, k.workflow)
	t.calls.Delete(k.workflow)
	cancel()
	now := t.now()

	var got time.Duration
	switch {
	case c.status >= 200 && c.status < 300 && err == nil:
		if s := wf.TaskReservationTimeout; s >= 1 && s <= MaxTaskReservationTimeout {
			got = time.Duration(s) * time.Second
		} else {
			err = fmt.Errorf("task_reservation_timeout %d is not within 1..%d seconds", s, MaxTaskReservationTimeout)
		}
	case c.status == 0 && err == nil:
		err = errors.New("no response")
	case c.status == 0:
		err = t.transport.named(err)
	default:
		he := &outbox.HTTPError{StatusCode: c.status, RetryAfter: parseRetryAfter(c.retryAfter, now)}
		if te, ok := errors.AsType[*client.TwilioRestError](err); ok {
			he.Code, he.Message = te.Code, te.Message
		} else {
			he.Message = http.StatusText(c.status)
		}
		err = he
	}

	t.mu.Lock()
	e := t.entries[k]
	if e == nil { // cannot happen: a pending entry is never evicted
		t.mu.Unlock()
		return
	}
	e.pending = false
	if run.Err() != nil {
		t.mu.Unlock()
		return // shutting down: nothing was learned, nothing failed
	}
	var was time.Duration
	failures := 0
	if got > 0 {
		was, e.timeout, e.failures, e.next = e.timeout, got, 0, now.Add(t.refresh)
	} else {
		e.failures++
		failures = e.failures
		wait := t.backoff(e.failures)
		if he, ok := errors.AsType[*outbox.HTTPError](err); ok && he.RetryAfter > wait {
			wait = he.RetryAfter
		}
		e.next = now.Add(wait)
	}
	using := e.timeout
	t.mu.Unlock()

	attrs := []slog.Attr{slog.String("workflow_sid", k.workflow), slog.String("workspace_sid", k.workspace)}
	switch {
	case got > 0 && was == 0:
		t.fetched.WithLabelValues("ok").Inc()
		t.log.LogAttrs(context.Background(), slog.LevelInfo, "learned the workflow's reservation timeout: REST actions for it are abandoned after it",
			append(attrs, slog.Float64("timeout_seconds", got.Seconds()))...)
	case got > 0 && was != got:
		t.fetched.WithLabelValues("ok").Inc()
		t.log.LogAttrs(context.Background(), slog.LevelInfo, "the workflow's reservation timeout changed",
			append(attrs, slog.Float64("timeout_seconds", got.Seconds()), slog.Float64("previous_seconds", was.Seconds()))...)
	case got > 0:
		t.fetched.WithLabelValues("ok").Inc()
	default:
		t.fetched.WithLabelValues("error").Inc()
		if ok, n := t.warns.allow(now); ok {
			if using == 0 {
				using = t.fallback
			}
			t.log.LogAttrs(context.Background(), slog.LevelWarn,
				"cannot fetch the workflow's reservation timeout; its REST actions keep the timeout shown, which is --reservation-timeout until the workflow's own is known",
				append(attrs, slog.String("error", err.Error()), slog.Int("failures", failures),
					slog.Float64("timeout_seconds", using.Seconds()), slog.Int("failures_not_logged", n))...)
		}
	}
}

// backoff is the wait after the n-th failed fetch in a row (from 1).
func (t *Timeouts) backoff(n int) time.Duration {
	if n > 30 {
		return t.backoffMax
	}
	return min(t.backoffMax, t.backoffBase<<(n-1))
}

// Register adds the metrics of the fetches to reg.
func (t *Timeouts) Register(reg prometheus.Registerer) error {
	if err := reg.Register(t.fetched); err != nil {
		return err
	}
	return reg.Register(t.known)
}

// sampler lets one log line through per interval and counts the rest.
type sampler struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be written now and how many were held back since the
// last one.
func (s *sampler) allow(now time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() && now.Sub(s.last) < s.every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}
