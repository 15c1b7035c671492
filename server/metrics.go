package server

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a callback, the outcome label of reservist_callbacks_total.
const (
	OutcomeAnswered    = "answered"    // an instruction was the answer
	OutcomeDeferred    = "deferred"    // {}: defer, or the decision went to the outbox
	OutcomeOnError     = "on_error"    // the callback could not be decided
	OutcomeForbidden   = "forbidden"   // the signature check failed
	OutcomeBadRequest  = "bad_request" // method, size or form refused
	OutcomeUnavailable = "unavailable" // a delayed decision could not be stored: 503
)

// Metrics are the callback listener's Prometheus metrics. The outbox and the reloader
// register their own.
type Metrics struct {
	callbacks  *prometheus.CounterVec
	series     sync.Map // callbackLabels → prometheus.Counter of callbacks
	latency    prometheus.Histogram
	ruleErrors *prometheus.CounterVec
	events     *prometheus.CounterVec
}

// NewMetrics creates the metrics; Register exposes them.
func NewMetrics() *Metrics {
	m := &Metrics{
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_callbacks_total",
			Help: "Assignment callbacks by deciding rule, instruction and outcome (answered, deferred, on_error, forbidden, bad_request, unavailable).",
		}, []string{"rule", "instruction", "outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reservist_callback_duration_seconds",
			Help: "Time from a callback's arrival to its answer.",
			// TaskRouter gives up after 5s; most answers take well under a millisecond.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_rule_evaluation_errors_total",
			Help: "Rule conditions that failed at run time (the rule did not match), by rule.",
		}, []string{"rule"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_events_total",
			Help: "TaskRouter Event callbacks by type (those reservist acts on; other for the rest) and result (handled, ignored, forbidden, bad_request).",
		}, []string{"type", "result"}),
	}
	return m
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	return registerAll(reg, m.callbacks, m.latency, m.ruleErrors, m.events)
}

// registerAll registers every collector, or none.
func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// NewBuildInfo is reservist_build_info, always 1: which build runs, as `reservist version`
// says (the linked or module version), the VCS revision it was built from, and the Go
// release that built it. Register it with the other metrics.
func NewBuildInfo(version, revision, goVersion string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "reservist_build_info",
		Help:        "Always 1; its labels say which build runs: version, VCS revision and the Go release that built it.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// callbackLabels are the labels of one reservist_callbacks_total series.
type callbackLabels struct{ rule, instruction, outcome string }

func (m *Metrics) callback(rule, instruction, outcome string, took time.Duration) {
	// WithLabelValues hashes and validates the three values and takes a lock on every call;
	// the series, once made, is kept in a lock-free map instead. It holds one entry per
	// series, as the CounterVec itself does.
	k := callbackLabels{rule, instruction, outcome}
	c, ok := m.series.Load(k)
	if !ok {
		c, _ = m.series.LoadOrStore(k, m.callbacks.WithLabelValues(rule, instruction, outcome))
	}
	c.(prometheus.Counter).Inc()
	m.latency.Observe(took.Seconds())
}

// event counts an Event callback. Its type is a label only when reservist acts on it, so
// that no caller can make series of its own.
func (m *Metrics) event(typ, result string) {
	if _, ok := eventEnds[typ]; !ok {
		typ = "other"
	}
	m.events.WithLabelValues(typ, result).Inc()
}
