package outbox

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the result label of reservist_rest_calls_total.
const (
	ResultOK         = "ok"
	ResultRetry      = "retry"
	ResultFinalError = "final_error"
	ResultAbandoned  = "abandoned"
	ResultDryRun     = "dry_run"
	ResultSuperseded = "superseded"
)

// Values of the status_class label of reservist_rest_calls_total: the class of TaskRouter's
// HTTP answer to the attempt ("1xx" to "5xx"), or none when there was no answer (a network
// error, parameters that could not be sent, dry-run, an action abandoned or superseded
// without a call).
const (
	Class2xx  = "2xx"
	Class4xx  = "4xx"
	Class5xx  = "5xx"
	ClassNone = "none"
)

// classOf is the status_class of an HTTP status: its first digit and "xx", so that the
// label has at most five values besides none.
func classOf(status int) string {
	if status < 100 || status > 599 {
		return ClassNone
	}
	return string(rune('0'+status/100)) + "xx"
}

// callSeries are the result and status_class pairs that an attempt can produce in
// practice, shown from the start at zero. Other pairs (a 3xx, say) appear when they occur.
var callSeries = [][2]string{
	{ResultOK, Class2xx},
	{ResultRetry, Class5xx}, {ResultRetry, Class4xx}, {ResultRetry, ClassNone}, // 5xx, 429, network
	{ResultFinalError, Class4xx}, {ResultFinalError, ClassNone}, // refused, invalid parameters
	{ResultSuperseded, Class4xx}, {ResultSuperseded, ClassNone}, // not pending, an Event callback
	{ResultAbandoned, ClassNone}, {ResultAbandoned, Class5xx}, {ResultAbandoned, Class4xx},
	{ResultDryRun, ClassNone},
}

// Values of the reason label of reservist_rest_pauses_total.
const (
	PauseRetryAfter = "retry_after" // a 429 paused every call
	PauseBreaker    = "breaker"     // failures in a row opened the circuit breaker
)

// Metrics are the outbox's Prometheus metrics, shared by the Carrier and the backend.
type Metrics struct {
	calls       *prometheus.CounterVec
	delay       prometheus.Histogram
	storeErrors *prometheus.CounterVec
	storeUp     prometheus.Gauge
	pauses      *prometheus.CounterVec
	paused      prometheus.GaugeFunc
	gate        atomic.Pointer[gate] // the carrier's, for paused
}

// NewMetrics creates the metrics; Register exposes them.
func NewMetrics() *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_rest_calls_total",
			Help: "Outbox REST attempts by result: ok, retry (failed, will retry), final_error (refused, not retried), superseded (the reservation is no longer pending: a 400 saying so, or an Event callback), abandoned (deadline passed), dry_run (no credentials); and by status_class of TaskRouter's answer: 2xx, 4xx, 5xx, or none (no answer: a network error, no call made).",
		}, []string{"result", "status_class"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reservist_rest_success_delay_seconds",
			Help: "Time from the assignment callback to the REST call that carried its decision out.",
			// From an immediate call to the default 120s reservation timeout.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_outbox_store_errors_total",
			Help: "Outbox store operations that failed, by op: put (storing a new action failed or missed the response budget), finish (recording an outcome failed; retried), check (the store's file removed or replaced, a commit stuck, a probe failed).",
		}, []string{"op"}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reservist_outbox_store_up",
			Help: "Whether the outbox store works (1) or its last operation failed (0); /readyz is 503 while it is 0.",
		}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_rest_pauses_total",
			Help: "Times every REST call was held back, by reason: retry_after (a 429) or breaker (failures in a row opened the circuit breaker).",
		}, []string{"reason"}),
	}
	m.paused = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "reservist_rest_paused",
		Help: "Whether REST calls are held back now (1): by a 429's pause or an open circuit breaker.",
	}, func() float64 {
		if g := m.gate.Load(); g != nil && g.held(time.Now()) {
			return 1
		}
		return 0
	})
	// Every label value shows from the start, at zero, so that rate() and alerts work
	// before the first occurrence.
	for _, rc := range callSeries {
		m.calls.WithLabelValues(rc[0], rc[1])
	}
	for _, op := range []string{StoreOpPut, StoreOpFinish, StoreOpCheck} {
		m.storeErrors.WithLabelValues(op)
	}
	for _, r := range []string{PauseRetryAfter, PauseBreaker} {
		m.pauses.WithLabelValues(r)
	}
	m.storeUp.Set(1)
	return m
}

// Register adds the metrics to reg, all of them or, on an error, none.
func (m *Metrics) Register(reg prometheus.Registerer) error { return reg.Register(m) }

// collectors are the metrics, as one Collector so that they register together.
func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.delay, m.storeErrors, m.storeUp, m.pauses, m.paused}
}

// Describe is prometheus.Collector's.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect is prometheus.Collector's.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

// count counts one attempt's outcome under the status class of its answer; Interrupted
// and Held are not counted.
func (m *Metrics) count(o Outcome, class string) {
	if r := o.result(); r != "" {
		m.calls.WithLabelValues(r, class).Inc()
	}
}

var (
	descDepth = prometheus.NewDesc("reservist_outbox_depth",
		"Pending outbox actions, waiting or in flight.", nil, nil)
	descOldest = prometheus.NewDesc("reservist_outbox_oldest_age_seconds",
		"Age of the oldest pending outbox action, from its assignment callback; 0 when none is pending.", nil, nil)
)

// backlog renders an outbox's Stats at scrape time, so that the gauges cannot drift.
type backlog struct {
	ob  Outbox
	now func() time.Time
}

func (b backlog) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDepth
	ch <- descOldest
}

func (b backlog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := b.ob.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDepth, err)
		ch <- prometheus.NewInvalidMetric(descOldest, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, oldestAge(st, b.now()))
}

// oldestAge is how long the oldest pending action has waited at now, in seconds: 0 when
// none is pending, and never below 0 (a callback's time from a clock a little ahead).
func oldestAge(st Stats, now time.Time) float64 {
	if st.Oldest.IsZero() {
		return 0
	}
	return max(0, now.Sub(st.Oldest).Seconds())
}

// RegisterBacklog adds the gauges of what ob holds to reg.
func RegisterBacklog(reg prometheus.Registerer, ob Outbox) error {
	return reg.Register(backlog{ob: ob, now: time.Now})
}
