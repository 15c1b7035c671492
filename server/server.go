// Package server is reservist's HTTP side: the callback listener that answers TaskRouter's
// assignment callbacks, with its health checks, and the admin listener with metrics, reloads,
// the rules status and the rule authors' playground. routes.go lists every route of both.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/server/playground"
)

// MaxBody is the largest callback body accepted; a larger one is answered 413.
const MaxBody = 1 << 20

// Options are what the listeners need.
type Options struct {
	Rules  reload.Source
	Outbox outbox.Outbox // nil: decisions that go by REST cannot be kept

	// CallbackPaths are the paths TaskRouter calls (--callback-path).
	CallbackPaths []string
	// EventsPath is where TaskRouter's Event callbacks arrive (--events-path); "" serves
	// none.
	EventsPath string
	// Supersede ends the pending outbox actions an event says are over: the reservation's
	// (reservationSid set) or every one of the task's (taskSid set), and says how many; nil
	// ends none.
	Supersede func(ctx context.Context, reservationSid, taskSid, event string) (int, error)
	// Outcomes, if set, remembers each callback's deciding rule and counts the outcomes
	// that Event callbacks report.
	Outcomes *outcomes.Tracker
	// AuthToken checks X-Twilio-Signature; empty accepts unsigned callbacks (the caller
	// decides when that is allowed).
	AuthToken string
	// PublicURL is scheme://host[:port] as TaskRouter reaches reservist; nil takes the
	// request's own.
	PublicURL *url.URL

	// ResponseBudget is how long a decision may take before the answer is {} and the
	// decision goes to the outbox; 0 waits for it.
	ResponseBudget time.Duration
	// ReservationTimeout is the Workflow's TaskReservationTimeout: REST actions are
	// abandoned after it.
	ReservationTimeout time.Duration
	// Timeouts, when set, says each Workflow's own TaskReservationTimeout, which replaces
	// ReservationTimeout for the REST actions of the callbacks that name the Workflow.
	Timeouts Timeouts

	Logger      *slog.Logger // operations: refused callbacks, outbox failures
	DecisionLog *slog.Logger // one line per decided callback
	Metrics     *Metrics     // nil counts into metrics nobody collects
	// Gatherer is what GET /metrics serves; nil serves nothing there.
	Gatherer prometheus.Gatherer
	// Playground is the workbench on the admin listener; nil leaves it out.
	Playground *playground.Playground

	// Observe, if set, is called once for each authentic callback (after the signature
	// check) once it is decided and answered, with its parameters and decision: the
	// playground keeps the last few and --capture-dir writes them out. It runs on the
	// callback's goroutine before the handler returns, so it must not block or do I/O. The
	// handler does not reuse params or d afterwards: the observer may keep them, read-only.
	Observe func(params url.Values, d *engine.Decision)
	// Now is the wall clock a callback without a usable Timestamp is decided by; nil reads
	// time.Now as the callback arrives.
	Now func() time.Time

	beforeDecide func() // tests hold a decision back with it
}

// Server holds the handlers of both listeners.
type Server struct {
	o        Options
	callback *callback
	events   *events
	// shuttingDown turns /readyz to 503 while callbacks are still answered: the
	// --shutdown-delay before the drain.
	shuttingDown atomic.Bool
}

// ShuttingDown makes /readyz answer 503 from now on, saying "shutting_down": true, so that
// load balancers stop sending; everything else keeps being answered until the listeners
// drain.
func (s *Server) ShuttingDown() { s.shuttingDown.Store(true) }

// New returns the server for o.
func New(o Options) *Server {
	o = o.withDefaults()
	return &Server{o: o, callback: newCallback(o), events: newEvents(o)}
}

// withDefaults fills in what o leaves out: logs nobody reads, metrics nobody collects.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DecisionLog == nil {
		o.DecisionLog = o.Logger
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	return o
}

// callbackFirst hands the callback paths to the callback handler without the router, whose
// per-request context and copy of the request are a measurable part of a callback. It
// routes exactly as the router would: a path that arrived percent-encoded (RawPath set) is
// the router's to match, as is every other path.
type callbackFirst struct {
	paths    map[string]bool
	callback http.Handler
	router   http.Handler
}

func (c callbackFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawPath == "" && c.paths[r.URL.Path] {
		c.callback.ServeHTTP(w, r)
		return
	}
	c.router.ServeHTTP(w, r)
}
