package outbox

import (
	"log/slog"
	"sync"
	"time"
)

// gate is what every REST call of a process passes first: one limiter for all actions, so
// that a failing TaskRouter sees a trickle of calls instead of every pending action retrying
// on its own backoff (docs/outbox.md, "When TaskRouter fails").
//
//   - A 429 pauses every call: for its Retry-After, or without one for a pause that doubles
//     with each 429 in a row.
//   - Failures in a row (5xx, network errors) open a circuit breaker: no call for a cooldown,
//     then one probe; the probe's success closes the breaker, its failure doubles the
//     cooldown.
//   - Any answer that shows TaskRouter working (2xx, or a 4xx refusing the action) closes it.
//
// An action held back by the gate is not attempted: it keeps its attempt count and waits.
type gate struct {
	threshold int           // failures in a row that open the breaker
	base, max time.Duration // first and longest cooldown or 429 pause
	log       *slog.Logger
	metrics   *Metrics

	mu        sync.Mutex
	paused    time.Time     // no call starts before it (429)
	throttles int           // 429s in a row
	failures  int           // failures in a row
	open      bool          // the breaker is open
	until     time.Time     // when an open breaker lets a probe through
	cooldown  time.Duration // the open breaker's current cooldown
	probing   bool          // the probe is in flight
	since     time.Time     // when calls were last held back after flowing: for the log
}

// Defaults for the gate, overridable through CarrierOptions.
const (
	// DefaultBreakerThreshold is how many failures in a row open the circuit breaker.
	DefaultBreakerThreshold = 5
	// DefaultBreakerCooldown is the first cooldown of an open breaker, and the first pause
	// after a 429 without Retry-After; each further failure doubles it.
	DefaultBreakerCooldown = time.Second
	// DefaultBreakerMaxCooldown bounds the doubling.
	DefaultBreakerMaxCooldown = 30 * time.Second
)

// probeWait is how long an action held back by a probe in flight waits before it asks
// again: the probe may take as long as a call's timeout, and once it works everyone may go.
const probeWait = time.Second

// ticket is a call the gate let through.
type ticket struct{ probe bool }

// verdicts of a call, for the gate.
type callResult int

const (
	callWorked    callResult = iota // TaskRouter answered: 2xx, or a 4xx about the action
	callThrottled                   // 429
	callFailed                      // 5xx or a network error
	callNeutral                     // no answer that says anything: shutdown cut it short
)

// admit lets a call start now, or says when to ask again.
func (g *gate) admit(now time.Time) (ticket, bool, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.paused) {
		return ticket{}, false, g.paused
	}
	if g.open {
		if now.Before(g.until) {
			return ticket{}, false, g.until
		}
		if g.probing {
			// Look again soon: once the probe works, everyone may go.
			return ticket{}, false, now.Add(min(g.cooldown, probeWait))
		}
		g.probing = true
		return ticket{probe: true}, true, time.Time{}
	}
	return ticket{}, true, time.Time{}
}

// heldUntil is zero when a call may start now, else when to look again. Unlike admit it
// takes nothing: a scheduler asks before it picks an action.
func (g *gate) heldUntil(now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case now.Before(g.paused):
		return g.paused
	case g.open && now.Before(g.until):
		return g.until
	case g.open && g.probing:
		return now.Add(min(g.cooldown, probeWait))
	}
	return time.Time{}
}

// held reports whether calls are held back now, for the metrics.
func (g *gate) held(now time.Time) bool { return !g.heldUntil(now).IsZero() }

// done tells the gate how an admitted call ended.
func (g *gate) done(t ticket, now time.Time, r callResult, retryAfter time.Duration, cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.probe {
		g.probing = false
	}
	switch r {
	case callWorked:
		g.failures, g.throttles = 0, 0
		if g.open || now.Before(g.paused) {
			g.log.Info("REST calls resume: TaskRouter answers again",
				slog.Float64("held_seconds", now.Sub(g.since).Seconds()))
		}
		g.open, g.cooldown = false, 0
	case callThrottled:
		g.throttles++
		pause := retryAfter
		if pause <= 0 {
			pause = g.backoff(g.throttles)
		}
		// TaskRouter answers, so the breaker closes; the pause holds everyone instead.
		g.failures, g.open, g.cooldown = 0, false, 0
		if end := now.Add(pause); end.After(g.paused) {
			if !now.Before(g.paused) {
				g.since = now
				g.metrics.pauses.WithLabelValues(PauseRetryAfter).Inc()
				g.log.Warn("REST calls paused: TaskRouter answered 429 Too Many Requests",
					slog.Float64("pause_seconds", pause.Seconds()), slog.Bool("retry_after", retryAfter > 0))
			}
			g.paused = end
		}
	case callFailed:
		g.failures++
		switch {
		case t.probe && g.open:
			g.cooldown = min(2*g.cooldown, g.max)
			g.until = now.Add(g.cooldown)
			g.log.Warn("REST probe failed; the circuit breaker stays open",
				slog.Float64("cooldown_seconds", g.cooldown.Seconds()), slog.String("error", errText(cause)))
		case !g.open && g.failures >= g.threshold:
			g.open, g.cooldown = true, g.base
			g.until = now.Add(g.cooldown)
			g.since = now
			g.metrics.pauses.WithLabelValues(PauseBreaker).Inc()
			g.log.Warn("REST calls stopped: the circuit breaker opened after failures in a row; one probe per cooldown until TaskRouter answers",
				slog.Int("failures", g.failures), slog.Float64("cooldown_seconds", g.cooldown.Seconds()),
				slog.String("error", errText(cause)))
		}
	}
}

// backoff is the n-th (from 1) doubling of the base, at most max.
func (g *gate) backoff(n int) time.Duration {
	d := g.base
	for i := 1; i < n && d < g.max; i++ {
		d *= 2
	}
	return min(d, g.max)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sampler lets one log line through per interval and counts the rest, so that a storm of
// like events (every pending action retrying) costs a line a second, not a line each.
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
	if d := now.Sub(s.last); !s.last.IsZero() && d >= 0 && d < s.every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}
