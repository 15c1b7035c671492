package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// Outcome is how one attempt at an action ended.
type Outcome int

// The outcomes of Carrier.Try. Every one but Retried, Held and Interrupted ends the action.
const (
	Sent        Outcome = iota // TaskRouter took it
	Retried                    // it failed in a way worth retrying: try again at Step.Next
	Failed                     // TaskRouter refused it for good
	Abandoned                  // the reservation's deadline passed first
	DryRun                     // no credentials: logged and dropped
	Interrupted                // the caller's context ended during the call: still pending
	Held                       // not attempted: every call is held back until Step.Next (see gate)
	// Superseded: the reservation is no longer pending, so there is nothing left to do.
	// TaskRouter said so (a 400 that Judge finds NotPending), or an Event callback did
	// (Carrier.Supersede). With multi-reservation this is a normal end, not an error.
	Superseded
)

// result is the outcome's label value of reservist_rest_calls_total.
func (o Outcome) result() string {
	switch o {
	case Sent:
		return ResultOK
	case Retried:
		return ResultRetry
	case Failed:
		return ResultFinalError
	case Abandoned:
		return ResultAbandoned
	case DryRun:
		return ResultDryRun
	case Superseded:
		return ResultSuperseded
	}
	return ""
}

// Ends reports whether the action is finished: nothing more will be tried.
func (o Outcome) Ends() bool { return o != Retried && o != Interrupted && o != Held }

// Step is the outcome of an attempt and, for Retried and Held, when to try again. A Held
// step is no attempt: the next one has the same attempt number.
type Step struct {
	Outcome Outcome
	Next    time.Time
}

// CarrierOptions configure a Carrier. The zero value is usable: no Sender means dry-run.
type CarrierOptions struct {
	// Sender carries actions out; nil logs each due action as dry-run and drops it (no
	// Twilio credentials are configured).
	Sender Sender
	// Logger receives what happens to each action; default discards it.
	Logger *slog.Logger
	// Metrics count the attempts; nil counts into metrics nobody collects.
	Metrics *Metrics
	// Clock defaults to the real clock.
	Clock Clock
	// BackoffBase and BackoffMax bound the retry backoff: before retry n (from 0) the outbox
	// waits a random time in (0, min(BackoffMax, BackoffBase·2ⁿ)], or longer if Retry-After
	// says so. Defaults DefaultBackoffBase and DefaultBackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// BreakerThreshold, BreakerCooldown and BreakerMaxCooldown tune the limiter every call
	// passes (see gate); defaults DefaultBreakerThreshold, DefaultBreakerCooldown and
	// DefaultBreakerMaxCooldown.
	BreakerThreshold   int
	BreakerCooldown    time.Duration
	BreakerMaxCooldown time.Duration
}

// Defaults for CarrierOptions.
const (
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 15 * time.Second
)

// retryLogEvery is how often, at most, a retry is logged: against a failing TaskRouter
// every pending action retries, and one line a second with a count says as much.
const retryLogEvery = time.Second

// Carrier makes one attempt at an action and decides what follows from TaskRouter's answer:
// done, retry at a time, failed for good, or abandoned at the deadline. Both backends carry
// actions out through it, so that they log, count, retry and hold back alike; they only
// keep the outcome. Every call of the process passes one gate: a 429 pauses them all, and
// failures in a row open a circuit breaker that lets one probe through per cooldown. It is
// safe for concurrent use.
type Carrier struct {
	sender      Sender
	log         *slog.Logger
	metrics     *Metrics
	clock       Clock
	backoffBase time.Duration
	backoffMax  time.Duration
	gate        *gate
	retryLines  sampler

	unauthorized atomic.Bool
}

// NewCarrier returns a Carrier.
func NewCarrier(o CarrierOptions) *Carrier {
	c := &Carrier{sender: o.Sender, log: o.Logger, metrics: o.Metrics, clock: o.Clock,
		backoffBase: o.BackoffBase, backoffMax: o.BackoffMax, retryLines: sampler{every: retryLogEvery}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.metrics == nil {
		c.metrics = NewMetrics()
	}
	if c.clock == nil {
		c.clock = RealClock{}
	}
	if c.backoffBase <= 0 {
		c.backoffBase = DefaultBackoffBase
	}
	if c.backoffMax <= 0 {
		c.backoffMax = DefaultBackoffMax
	}
	c.backoffMax = max(c.backoffMax, c.backoffBase)
	g := &gate{threshold: o.BreakerThreshold, base: o.BreakerCooldown, max: o.BreakerMaxCooldown,
		log: c.log, metrics: c.metrics}
	if g.threshold <= 0 {
		g.threshold = DefaultBreakerThreshold
	}
	if g.base <= 0 {
		g.base = DefaultBreakerCooldown
	}
	if g.max <= 0 {
		g.max = DefaultBreakerMaxCooldown
	}
	g.max = max(g.max, g.base)
	c.gate = g
	c.metrics.gate.Store(g)
	return c
}

// HeldUntil is zero when a call may start at now, else the time before which every call
// is held back (a 429's pause, an open circuit breaker). A backend's scheduler asks it
// before it picks actions, so that it sleeps through a pause instead of handing Try actions
// that would only be held; Try checks again.
func (c *Carrier) HeldUntil(now time.Time) time.Time { return c.gate.heldUntil(now) }

// Clock is the carrier's clock, for the backend that schedules its steps.
func (c *Carrier) Clock() Clock { return c.clock }

// Metrics are the carrier's metrics, which the backend adds its own counts to.
func (c *Carrier) Metrics() *Metrics { return c.metrics }

// Logger is the carrier's logger.
func (c *Carrier) Logger() *slog.Logger { return c.log }

// Unauthorized reports whether TaskRouter has refused a call with 401 or 403: the
// credentials are wrong or lack permission.
func (c *Carrier) Unauthorized() bool { return c.unauthorized.Load() }

// Try makes attempt number attempt (from 0) at a and says what follows. keep stores the
// step's outcome in the backend before Try logs and counts it, so that whoever sees the
// count finds the outcome kept. While every call is held back, Try sends nothing and
// returns Held with the time to try again.
func (c *Carrier) Try(ctx context.Context, a Action, attempt int, keep func(Step)) Step {
	now := c.clock.Now()
	if now.After(a.Deadline) {
		return c.Abandon(a, attempt, "deadline passed before the action could be sent", keep)
	}
	if c.sender == nil {
		keep(Step{Outcome: DryRun})
		c.log.Info("dry-run", append(Attrs(a), slog.Any("params", a.LogParams()))...)
		c.metrics.count(DryRun, ClassNone)
		return Step{Outcome: DryRun}
	}
	t, ok, until := c.gate.admit(now)
	if !ok {
		if until.After(a.Deadline) {
			return c.abandon(a, attempt, "every call is held back past the deadline (TaskRouter answered 429, or failed until the circuit breaker opened)", ClassNone, keep)
		}
		step := Step{Outcome: Held, Next: until}
		keep(step)
		return step
	}

	err := c.sender.Send(ctx, a)
	now = c.clock.Now()
	var he *HTTPError
	isHTTP := errors.As(err, &he)
	class := statusClass(err, he)
	c.gate.done(t, now, classify(ctx, err, he), retryAfter(he), scrubbed(a, err))
	if err == nil {
		step := Step{Outcome: Sent}
		keep(step)
		delay := now.Sub(a.Received)
		c.metrics.count(Sent, class)
		c.metrics.delay.Observe(delay.Seconds())
		c.log.Info("outbox action sent", append(Attrs(a),
			slog.Int("attempt", attempt+1), slog.Float64("delay_seconds", delay.Seconds()))...)
		return step
	}
	if ctx.Err() != nil {
		step := Step{Outcome: Interrupted} // shutting down: still pending
		keep(step)
		return step
	}

	if isHTTP && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden) {
		c.unauthorized.Store(true)
	}
	switch Judge(err) {
	case NotPending:
		step := Step{Outcome: Superseded}
		keep(step)
		c.log.Info("outbox action superseded", append(Attrs(a), slog.Int("attempt", attempt+1),
			slog.Int("status", he.StatusCode), slog.Int("twilio_code", he.Code),
			slog.String("twilio_message", a.scrub(he.Message)))...)
		c.metrics.count(Superseded, class)
		return step
	case Final:
		step := Step{Outcome: Failed}
		keep(step)
		attrs := append(Attrs(a), slog.Int("attempt", attempt+1), slog.Any("error", scrubbed(a, err)))
		if isHTTP {
			attrs = append(attrs, slog.Int("status", he.StatusCode), slog.Int("twilio_code", he.Code),
				slog.String("twilio_message", a.scrub(he.Message)))
		}
		c.log.Error("outbox action failed", attrs...)
		c.metrics.count(Failed, class)
		return step
	}

	wait := c.backoff(attempt)
	if isHTTP && he.RetryAfter > wait {
		wait = he.RetryAfter
	}
	next := now.Add(wait)
	if held := c.gate.heldUntil(now); held.After(next) {
		next, wait = held, held.Sub(now) // this failure may have opened the breaker
	}
	if next.After(a.Deadline) {
		return c.abandon(a, attempt+1, fmt.Sprintf("next attempt would be after the deadline: %v", scrubbed(a, err)), class, keep)
	}
	step := Step{Outcome: Retried, Next: next}
	keep(step)
	c.metrics.count(Retried, class)
	if ok, n := c.retryLines.allow(now); ok {
		c.log.Warn("outbox action will be retried", append(Attrs(a),
			slog.Int("attempt", attempt+1), slog.Float64("wait_seconds", wait.Seconds()), slog.Any("error", scrubbed(a, err)),
			slog.Int("retries_not_logged", n))...)
	}
	return step
}

// classify is what a call's end tells the gate about TaskRouter.
func classify(ctx context.Context, err error, he *HTTPError) callResult {
	switch {
	case err == nil:
		return callWorked
	case ctx.Err() != nil, errors.Is(err, ErrInvalidParams):
		return callNeutral // no answer, or no call at all
	case he == nil:
		return callFailed // a network error
	case he.StatusCode == http.StatusTooManyRequests:
		return callThrottled
	case he.StatusCode >= 500:
		return callFailed
	}
	return callWorked // a 4xx about the action: TaskRouter works
}

func retryAfter(he *HTTPError) time.Duration {
	if he == nil {
		return 0
	}
	return he.RetryAfter
}

// scrubbed is err for the log, without the action's private values.
func scrubbed(a Action, err error) error {
	if err == nil || len(a.Private) == 0 {
		return err
	}
	return errors.New(a.scrub(err.Error()))
}

// Abandon gives an action up, its deadline passed or passing before the next attempt, and
// has keep store that.
func (c *Carrier) Abandon(a Action, attempts int, reason string, keep func(Step)) Step {
	return c.abandon(a, attempts, reason, ClassNone, keep)
}

// abandon is Abandon counted under the status class of the answer that led to it: the last
// attempt's, when its retry would have come after the deadline.
func (c *Carrier) abandon(a Action, attempts int, reason, class string, keep func(Step)) Step {
	step := Step{Outcome: Abandoned}
	keep(step)
	c.log.Warn("outbox action abandoned", append(Attrs(a),
		slog.Int("attempts", attempts), slog.Time("deadline", a.Deadline), slog.String("reason", reason))...)
	c.metrics.count(Abandoned, class)
	return step
}

// Supersede ends an action that is waiting (not in flight) because an Event callback said
// its reservation or task is over, and has keep store that; event is the callback's
// EventType, for the log. It is logged at info and counted superseded with status class
// none: no call was made. A backend that has stored the outcome already passes a keep
// that does nothing.
func (c *Carrier) Supersede(a Action, event string, keep func(Step)) Step {
	step := Step{Outcome: Superseded}
	keep(step)
	c.log.Info("outbox action superseded", append(Attrs(a), slog.String("event", event))...)
	c.metrics.count(Superseded, ClassNone)
	return step
}

// statusClass is the status_class label of an attempt that ended with err: the class of
// TaskRouter's HTTP status, or none when there was no answer (a network error, parameters
// that could not be sent).
func statusClass(err error, he *HTTPError) string {
	switch {
	case err == nil:
		return Class2xx
	case he == nil:
		return ClassNone
	}
	return classOf(he.StatusCode)
}

// backoff is the full-jitter wait before retry n (from 0).
func (c *Carrier) backoff(n int) time.Duration {
	ceiling := c.backoffMax
	if n < 32 {
		if d := c.backoffBase << n; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceiling))) + 1
}

// Attrs identify an action in logs. Attributes of tasks and workers never reach an action,
// so none can leak through these.
func Attrs(a Action) []any {
	return []any{
		slog.String("reservation_sid", a.ReservationSid),
		slog.String("task_sid", a.TaskSid),
		slog.String("worker_sid", a.WorkerSid),
		slog.String("rule", a.Rule),
	}
}
