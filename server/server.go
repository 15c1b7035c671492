// Package server is reservist's HTTP surface (SPEC §2): the callback listener that answers
// TaskRouter assignment callbacks, with its health checks, and the admin listener with
// metrics, reloads and the rules status.
package server

import (
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/server/reload"
)

// MaxBody is the largest callback body accepted (SPEC §2: over 1 MiB → 413).
const MaxBody = 1 << 20

// RuleSource is what serves the rules: *reload.Reloader.
type RuleSource interface {
	Current() *reload.Rules
	Status() reload.Status
	Reload(reason string) error
}

// Outbox keeps decisions that go by REST until they are sent (SPEC §4).
type Outbox interface {
	// Put stores an action durably before it returns. queued is false when an action for
	// the same reservation is already kept, which is not an error.
	Put(Action) (queued bool, err error)
	// Unauthorized reports that TaskRouter refused the REST credentials.
	Unauthorized() bool
}

// Action is one decision to carry out through the Reservations REST API.
type Action struct {
	ReservationSid, TaskSid, WorkspaceSid, WorkerSid string
	Rule                                             string
	Params                                           url.Values // the REST parameters
	Received                                         time.Time  // when the callback arrived
	Due                                              time.Time  // Received + the rule's delay
	Deadline                                         time.Time  // Received + the reservation timeout
}

// Options are what the callback listener needs.
type Options struct {
	Rules  RuleSource
	Outbox Outbox

	// CallbackPaths are the paths TaskRouter calls (--callback-path).
	CallbackPaths []string
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

	Logger      *slog.Logger // operations: refused callbacks, outbox failures
	DecisionLog *slog.Logger // one line per decided callback
	Metrics     *Metrics     // nil counts into metrics nobody collects

	// Observe, if set, is called once for each authentic callback (after the signature
	// check) once it is decided and answered, with its parameters and decision: the admin
	// playground keeps the last few and --capture-dir writes them out. It runs on the
	// callback's goroutine before the handler returns, so it must not block or do I/O. The
	// handler does not reuse params or d afterwards: the observer may keep them, read-only.
	Observe func(params url.Values, d *engine.Decision)

	beforeDecide func() // tests hold a decision back with it
}

// New returns the callback listener's handler: the callback paths, /healthz and /readyz.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DecisionLog == nil {
		o.DecisionLog = o.Logger
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	r := chi.NewRouter()
	r.Use(recoverer(o.Logger))
	r.NotFound(handleNotFound().ServeHTTP)
	r.MethodNotAllowed(handleMethodNotAllowed().ServeHTTP)

	r.Get("/healthz", handleHealthz().ServeHTTP)
	r.Get("/readyz", handleReadyz(o.Rules, o.Outbox).ServeHTTP)
	cb := newCallback(o)
	direct := callbackFirst{paths: map[string]bool{}, callback: recoverer(o.Logger)(cb), router: r}
	for _, p := range o.CallbackPaths {
		r.Handle(p, cb) // every method: the handler answers 405 itself, in SPEC order
		direct.paths[p] = true
	}
	return direct
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

// NewAdmin returns the admin listener's handler: /metrics, POST /-/reload and GET /rules.
func NewAdmin(rules RuleSource, metrics prometheus.Gatherer, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	r.Use(recoverer(logger))
	r.NotFound(handleNotFound().ServeHTTP)
	r.MethodNotAllowed(handleMethodNotAllowed().ServeHTTP)

	r.Handle("/metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	r.Post("/-/reload", handleReload(rules).ServeHTTP)
	r.Get("/rules", handleRules(rules).ServeHTTP)
	return r
}
