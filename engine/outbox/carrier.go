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

// The outcomes of Carrier.Try. Every one but Retry and Interrupted ends the action.
const (
	Sent        Outcome = iota // TaskRouter took it
	Retried                    // it failed in a way worth retrying: try again at Step.Next
	Failed                     // TaskRouter refused it for good
	Abandoned                  // the reservation's deadline passed first
	DryRun                     // no credentials: logged and dropped
	Interrupted                // the caller's context ended during the call: still pending
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
	}
	return ""
}

// Ends reports whether the action is finished: nothing more will be tried.
func (o Outcome) Ends() bool { return o != Retried && o != Interrupted }

// Step is the outcome of an attempt and, for Retried, when to try again.
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
}

// Defaults for CarrierOptions.
const (
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 15 * time.Second
)

// Carrier makes one attempt at an action and decides what follows from TaskRouter's answer:
// done, retry at a time, failed for good, or abandoned at the deadline. Both backends carry
// actions out through it, so that they log, count and retry alike; they only keep the
// outcome. It is safe for concurrent use.
type Carrier struct {
	sender      Sender
	log         *slog.Logger
	metrics     *Metrics
	clock       Clock
	backoffBase time.Duration
	backoffMax  time.Duration

	unauthorized atomic.Bool
}

// NewCarrier returns a Carrier.
func NewCarrier(o CarrierOptions) *Carrier {
	c := &Carrier{sender: o.Sender, log: o.Logger, metrics: o.Metrics, clock: o.Clock,
		backoffBase: o.BackoffBase, backoffMax: o.BackoffMax}
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
	return c
}

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
// count finds the outcome kept.
func (c *Carrier) Try(ctx context.Context, a Action, attempt int, keep func(Step)) Step {
	now := c.clock.Now()
	if now.After(a.Deadline) {
		return c.Abandon(a, attempt, "deadline passed before the action could be sent", keep)
	}
	if c.sender == nil {
		keep(Step{Outcome: DryRun})
		c.log.Info("dry-run", append(Attrs(a), slog.Any("params", a.Params.Form()))...)
		c.metrics.count(DryRun)
		return Step{Outcome: DryRun}
	}

	err := c.sender.Send(ctx, a)
	now = c.clock.Now()
	if err == nil {
		step := Step{Outcome: Sent}
		keep(step)
		delay := now.Sub(a.Received)
		c.metrics.count(Sent)
		c.metrics.delay.Observe(delay.Seconds())
		c.log.Info("outbox action sent", append(Attrs(a),
			slog.Int("attempt", attempt+1), slog.Duration("delay", delay))...)
		return step
	}
	if ctx.Err() != nil {
		step := Step{Outcome: Interrupted} // shutting down: still pending
		keep(step)
		return step
	}

	var he *HTTPError
	isHTTP := errors.As(err, &he)
	if isHTTP && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden) {
		c.unauthorized.Store(true)
	}
	if Judge(err) == Final {
		step := Step{Outcome: Failed}
		keep(step)
		attrs := append(Attrs(a), slog.Int("attempt", attempt+1), slog.Any("error", err))
		if isHTTP {
			attrs = append(attrs, slog.Int("status", he.StatusCode), slog.Int("twilio_code", he.Code),
				slog.String("twilio_message", he.Message))
		}
		c.log.Error("outbox action failed", attrs...)
		c.metrics.count(Failed)
		return step
	}

	wait := c.backoff(attempt)
	if isHTTP && he.RetryAfter > wait {
		wait = he.RetryAfter
	}
	next := now.Add(wait)
	if next.After(a.Deadline) {
		return c.Abandon(a, attempt+1, fmt.Sprintf("next attempt would be after the deadline: %v", err), keep)
	}
	step := Step{Outcome: Retried, Next: next}
	keep(step)
	c.metrics.count(Retried)
	c.log.Warn("outbox action will be retried", append(Attrs(a),
		slog.Int("attempt", attempt+1), slog.Duration("wait", wait), slog.Any("error", err))...)
	return step
}

// Abandon gives an action up, its deadline passed or passing before the next attempt, and
// has keep store that.
func (c *Carrier) Abandon(a Action, attempts int, reason string, keep func(Step)) Step {
	step := Step{Outcome: Abandoned}
	keep(step)
	c.log.Warn("outbox action abandoned", append(Attrs(a),
		slog.Int("attempts", attempts), slog.Time("deadline", a.Deadline), slog.String("reason", reason))...)
	c.metrics.count(Abandoned)
	return step
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
