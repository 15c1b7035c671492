// Package outbox carries out assignment decisions through the TaskRouter
// Reservations REST API: durably, once per reservation, with retries until
// the reservation's deadline (SPEC §4).
//
// A decision is Put before the callback is answered; Put returns once the
// action is committed to a bbolt file on disk, so a process killed right after
// still carries the action out when it starts again. Run sends due actions
// with bounded concurrency, retries network errors, 429 and 5xx with
// exponential backoff and full jitter (honouring Retry-After), and gives up on
// final errors (4xx) or once the reservation's deadline has passed.
package outbox

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Action is one decision to carry out on one reservation.
type Action struct {
	ReservationSid string
	TaskSid        string
	WorkspaceSid   string
	WorkerSid      string
	// Rule is the name of the rule that decided, for logs.
	Rule string
	// Params are the exact form parameters of the REST update, e.g.
	// ReservationStatus=accepted or Instruction=call&CallFrom=…; list
	// parameters are repeated keys.
	Params url.Values
	// Received is when the assignment callback arrived.
	Received time.Time
	// Due is the earliest time to send (Received plus the rule's delay);
	// zero means Received.
	Due time.Time
	// Deadline is when the reservation times out (Received plus the
	// Workflow's reservation timeout); the action is abandoned after it.
	Deadline time.Time
}

// Sender carries an action out, typically through the REST API.
//
// An error that is or wraps an *HTTPError is classified by its status: 429
// and 5xx are retried, other statuses are final. An error wrapping
// ErrInvalidParams is final. Any other error is taken for a network error
// and retried.
type Sender interface {
	Send(ctx context.Context, a Action) error
}

// Clock is the outbox's source of time. Tests replace it to run backoff and
// delays without waiting for real time to pass.
//
// Only Run's scheduler goroutine calls After, for the time until the next
// action is due (a delay or a retry backoff), and it has at most one such
// wait outstanding; it abandons a wait when woken for another reason. So a
// test clock may simply advance its time by d and fire at once: that skips
// exactly the time the outbox would have slept.
type Clock interface {
	Now() time.Time
	// After is time.After: the channel receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Options configure an Outbox. The zero value is usable: no Sender means
// dry-run.
type Options struct {
	// Sender carries actions out; nil logs each due action as "dry-run"
	// and drops it (no Twilio credentials configured); so does a nil
	// *TwilioSender.
	Sender Sender
	// Concurrency is the most Send calls in flight at once; default 8.
	Concurrency int
	// Logger receives the outbox's logs; default discards them.
	Logger *slog.Logger
	// Registerer, when set, gets the outbox's metrics; they are
	// unregistered again by Close.
	Registerer prometheus.Registerer
	// Clock defaults to the real clock.
	Clock Clock
	// BackoffBase and BackoffMax bound the retry backoff: before retry n
	// (from 0) the outbox waits a random time in (0, min(BackoffMax,
	// BackoffBase·2ⁿ)], or longer if Retry-After says so. Defaults 500ms
	// and 15s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Drain is how long Run lets calls in flight finish once its context is done; default
	// 5s. A call cut off may already have reached TaskRouter: sent again after a restart it
	// would be refused as no longer pending and counted as a failure.
	Drain time.Duration
}

// Defaults for Options.
const (
	DefaultConcurrency = 8
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 15 * time.Second
	DefaultDrain       = 5 * time.Second
)

// ErrClosed is returned by Put and Run after Close.
var ErrClosed = errors.New("outbox: closed")

// gcInterval is how often, at most, finished actions past their deadline
// are deleted from the store.
const gcInterval = time.Minute

// Outbox is a durable queue of REST actions, one per reservation.
type Outbox struct {
	store       *store
	sender      Sender
	concurrency int
	log         *slog.Logger
	clock       Clock
	backoffBase time.Duration
	backoffMax  time.Duration
	drain       time.Duration
	metrics     *metrics

	unauthorized atomic.Bool
	wake         chan struct{} // poked when the queue changes

	mu      sync.Mutex
	pending map[string]*entry // by ReservationSid: queued or in flight
	queue   queue             // pending entries not in flight, soonest first
	closed  bool
	running bool
	stop    context.CancelFunc // stops the current Run
	stopped chan struct{}      // closed when the current Run has returned
	lastGC  time.Time
}

// entry is a pending action in memory.
type entry struct {
	a       Action
	next    time.Time // not before
	retries int
}

// Open opens (creating dir if missing) the outbox store in dir and loads the
// pending actions it holds. Those already past their deadline are abandoned.
func Open(dir string, opts Options) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &Outbox{
		sender:      opts.Sender,
		concurrency: opts.Concurrency,
		log:         opts.Logger,
		clock:       opts.Clock,
		backoffBase: opts.BackoffBase,
		backoffMax:  opts.BackoffMax,
		drain:       opts.Drain,
		wake:        make(chan struct{}, 1),
		pending:     make(map[string]*entry),
	}
	if ts, ok := o.sender.(*TwilioSender); ok && ts == nil {
		o.sender = nil // a nil *TwilioSender in the interface: no credentials
	}
	if o.concurrency <= 0 {
		o.concurrency = DefaultConcurrency
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.clock == nil {
		o.clock = realClock{}
	}
	if o.backoffBase <= 0 {
		o.backoffBase = DefaultBackoffBase
	}
	if o.backoffMax <= 0 {
		o.backoffMax = DefaultBackoffMax
	}
	o.backoffMax = max(o.backoffMax, o.backoffBase)
	if o.drain <= 0 {
		o.drain = DefaultDrain
	}

	st, err := openStore(filepath.Join(dir, "outbox.db"))
	if err != nil {
		return nil, err
	}
	o.store = st
	m, err := newMetrics(opts.Registerer, o.Depth)
	if err != nil {
		_ = st.close()
		return nil, fmt.Errorf("outbox: register metrics: %w", err)
	}
	o.metrics = m

	now := o.clock.Now()
	pending, expired, unreadable, err := st.load(now)
	if err != nil {
		m.unregister()
		_ = st.close()
		return nil, err
	}
	o.lastGC = now
	for _, sid := range unreadable {
		o.log.Error("outbox record unreadable; its action cannot be sent", slog.String("reservation_sid", sid))
	}
	for _, a := range expired {
		o.metrics.calls.WithLabelValues(resultAbandoned).Inc()
		o.log.Warn("outbox action abandoned", append(actionAttrs(a),
			slog.String("reason", "deadline passed while reservist was down"),
			slog.Time("deadline", a.Deadline))...)
	}
	for _, a := range pending {
		e := &entry{a: a, next: a.Due}
		o.pending[a.ReservationSid] = e
		heap.Push(&o.queue, e)
	}
	if len(pending) > 0 {
		o.log.Info("outbox resumed pending actions", slog.Int("count", len(pending)))
	}
	return o, nil
}

// Put stores an action for its reservation, durably (committed and synced
// to disk) before it returns. queued is false, and nothing changes, when an
// action for the same ReservationSid is already known: pending, or finished
// and not yet past its deadline.
func (o *Outbox) Put(a Action) (queued bool, err error) {
	if a.ReservationSid == "" || a.TaskSid == "" || a.WorkspaceSid == "" {
		return false, errors.New("outbox: action needs ReservationSid, TaskSid and WorkspaceSid")
	}
	if len(a.Params) == 0 {
		return false, errors.New("outbox: action needs Params")
	}
	if a.Deadline.IsZero() {
		return false, errors.New("outbox: action needs a Deadline")
	}
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return false, ErrClosed
	}
	now := o.clock.Now()
	if a.Received.IsZero() {
		a.Received = now
	}
	if a.Due.IsZero() {
		a.Due = a.Received
	}
	a.Params = cloneValues(a.Params) // the caller may reuse its map

	queued, err = o.store.insert(a, now)
	if err != nil || !queued {
		return false, err
	}
	o.mu.Lock()
	e := &entry{a: a, next: a.Due}
	o.pending[a.ReservationSid] = e
	heap.Push(&o.queue, e)
	o.mu.Unlock()
	o.poke()
	return true, nil
}

// Depth is the number of pending actions, in flight or waiting.
func (o *Outbox) Depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending)
}

// Unauthorized reports whether TaskRouter has refused a REST call with 401
// or 403 since Open: the credentials are wrong or lack permission.
func (o *Outbox) Unauthorized() bool { return o.unauthorized.Load() }

// Run sends due actions until ctx is done or the outbox is closed, then
// waits for the calls in flight and returns nil. Actions not yet carried
// out stay in the store for the next Run, in this process or the next.
// Calls in flight when ctx ends are cancelled and stay pending; sending one
// again later is harmless, as TaskRouter refuses a second update of a
// reservation that is no longer pending.
func (o *Outbox) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	if o.running {
		o.mu.Unlock()
		return errors.New("outbox: already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	o.running, o.stop, o.stopped = true, cancel, stopped
	o.mu.Unlock()
	defer func() {
		cancel()
		o.mu.Lock()
		o.running = false
		o.mu.Unlock()
		close(stopped)
	}()

	// Calls get their own context: shutting down stops new attempts at once but lets those in
	// flight finish for up to o.drain before they are cut short.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	done := make(chan struct{}, o.concurrency) // one per finished attempt
	inFlight := 0
	for {
		if ctx.Err() != nil {
			// Attempts cut short put their entries back; start no more. A real timer: the
			// drain bounds a shutdown, it does not schedule actions.
			drain := time.NewTimer(o.drain)
			defer drain.Stop()
			for inFlight > 0 {
				select {
				case <-done:
					inFlight--
				case <-drain.C:
					cancelSends()
				}
			}
			return nil
		}
		now := o.clock.Now()
		if now.Sub(o.lastGC) >= gcInterval {
			o.gc(now)
		}
		var timer <-chan time.Time
		o.mu.Lock()
		for inFlight < o.concurrency && o.queue.Len() > 0 && !o.queue[0].next.After(now) {
			e := heap.Pop(&o.queue).(*entry)
			inFlight++
			go o.attempt(sendCtx, e, done)
		}
		if inFlight < o.concurrency && o.queue.Len() > 0 {
			timer = o.clock.After(o.queue[0].next.Sub(now))
		}
		o.mu.Unlock()

		select {
		case <-ctx.Done():
		case <-done:
			inFlight--
		case <-o.wake:
		case <-timer:
		}
	}
}

// Close stops Run, waits for it to return and closes the store. Pending
// actions stay in the store.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	stop, stopped := o.stop, o.stopped
	o.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
	o.metrics.unregister()
	return o.store.close()
}

// poke wakes Run without blocking.
func (o *Outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// gc deletes finished actions whose deadline has passed: a callback for
// their reservation cannot come any more, so there is nothing to dedupe.
func (o *Outbox) gc(now time.Time) {
	o.lastGC = now
	n, err := o.store.gc(now)
	if err != nil {
		o.log.Error("outbox garbage collection failed", slog.Any("error", err))
		return
	}
	if n > 0 {
		o.log.Debug("outbox forgot finished actions", slog.Int("count", n))
	}
}

// attempt sends one action once and settles what happens next.
func (o *Outbox) attempt(ctx context.Context, e *entry, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	a := e.a
	now := o.clock.Now()
	if now.After(a.Deadline) {
		o.abandon(e, now, "deadline passed before the action could be sent")
		return
	}
	if o.sender == nil {
		o.log.Info("dry-run", append(actionAttrs(a), slog.Any("params", a.Params))...)
		o.finish(e, stateDryRun, now)
		o.metrics.calls.WithLabelValues(resultDryRun).Inc()
		return
	}

	err := o.sender.Send(ctx, a)
	now = o.clock.Now()
	if err == nil {
		o.finish(e, stateDone, now)
		o.metrics.calls.WithLabelValues(resultOK).Inc()
		delay := now.Sub(a.Received)
		o.metrics.delay.Observe(delay.Seconds())
		o.log.Info("outbox action sent", append(actionAttrs(a),
			slog.Int("attempt", e.retries+1), slog.Duration("delay", delay))...)
		return
	}
	if ctx.Err() != nil {
		// Shutting down: leave it pending for the next Run.
		o.requeue(e, now)
		return
	}

	var he *HTTPError
	isHTTP := errors.As(err, &he)
	if isHTTP && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden) {
		o.unauthorized.Store(true)
	}
	if !retryable(err) {
		attrs := append(actionAttrs(a), slog.Int("attempt", e.retries+1), slog.Any("error", err))
		if isHTTP {
			attrs = append(attrs, slog.Int("status", he.StatusCode), slog.Int("twilio_code", he.Code),
				slog.String("twilio_message", he.Message))
		}
		o.log.Error("outbox action failed", attrs...)
		o.finish(e, stateFailed, now)
		o.metrics.calls.WithLabelValues(resultFinalError).Inc()
		return
	}

	wait := o.backoff(e.retries)
	if isHTTP && he.RetryAfter > wait {
		wait = he.RetryAfter
	}
	next := now.Add(wait)
	if next.After(a.Deadline) {
		o.abandon(e, now, fmt.Sprintf("next attempt would be after the deadline: %v", err))
		return
	}
	o.metrics.calls.WithLabelValues(resultRetry).Inc()
	o.log.Warn("outbox action will be retried", append(actionAttrs(a),
		slog.Int("attempt", e.retries+1), slog.Duration("wait", wait), slog.Any("error", err))...)
	e.retries++
	o.requeue(e, next)
}

// retryable says whether a Send error is worth another attempt.
func retryable(err error) bool {
	if errors.Is(err, ErrInvalidParams) {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode == http.StatusTooManyRequests || he.StatusCode >= 500
	}
	return true // a network error
}

// backoff is the full-jitter wait before retry n (from 0).
func (o *Outbox) backoff(n int) time.Duration {
	ceiling := o.backoffMax
	if n < 32 {
		if d := o.backoffBase << n; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceiling))) + 1
}

// requeue puts an entry back in the queue to be tried at next.
func (o *Outbox) requeue(e *entry, next time.Time) {
	o.mu.Lock()
	e.next = next
	heap.Push(&o.queue, e)
	o.mu.Unlock()
}

// finish records the entry's outcome and forgets it from memory; the store
// keeps it until its deadline so that duplicates are refused.
func (o *Outbox) finish(e *entry, state string, now time.Time) {
	if err := o.store.finish(e.a.ReservationSid, state, now); err != nil {
		// The call has been made; at worst it is made again after a
		// restart and refused as not pending.
		o.log.Error("outbox could not record a finished action", append(actionAttrs(e.a), slog.Any("error", err))...)
	}
	o.mu.Lock()
	delete(o.pending, e.a.ReservationSid)
	o.mu.Unlock()
}

func (o *Outbox) abandon(e *entry, now time.Time, reason string) {
	o.log.Warn("outbox action abandoned", append(actionAttrs(e.a),
		slog.Int("attempts", e.retries), slog.Time("deadline", e.a.Deadline), slog.String("reason", reason))...)
	o.finish(e, stateAbandoned, now)
	o.metrics.calls.WithLabelValues(resultAbandoned).Inc()
}

// actionAttrs identify an action in logs. Attributes of tasks and workers
// never reach the outbox, so none can leak here.
func actionAttrs(a Action) []any {
	return []any{
		slog.String("reservation_sid", a.ReservationSid),
		slog.String("task_sid", a.TaskSid),
		slog.String("worker_sid", a.WorkerSid),
		slog.String("rule", a.Rule),
	}
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vals := range v {
		out[k] = append([]string(nil), vals...)
	}
	return out
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// queue is a min-heap of entries by next.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(*entry)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}
