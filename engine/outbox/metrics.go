package outbox

import (
	"context"
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
)

// Metrics are the outbox's Prometheus metrics, shared by the Carrier and the backend.
type Metrics struct {
	calls *prometheus.CounterVec
	delay prometheus.Histogram
}

// NewMetrics creates the metrics; Register exposes them.
func NewMetrics() *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_rest_calls_total",
			Help: "Outbox REST attempts by result: ok, retry (failed, will retry), final_error (refused, not retried), abandoned (deadline passed), dry_run (no credentials).",
		}, []string{"result"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reservist_rest_success_delay_seconds",
			Help: "Time from the assignment callback to the REST call that carried its decision out.",
			// From an immediate call to the default 120s reservation timeout.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
	}
	// Every result shows from the start, at zero, so that rate() and alerts work before
	// the first occurrence.
	for _, r := range []string{ResultOK, ResultRetry, ResultFinalError, ResultAbandoned, ResultDryRun} {
		m.calls.WithLabelValues(r)
	}
	return m
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	if err := reg.Register(m.calls); err != nil {
		return err
	}
	if err := reg.Register(m.delay); err != nil {
		reg.Unregister(m.calls)
		return err
	}
	return nil
}

// count counts one attempt's outcome; Interrupted is not counted.
func (m *Metrics) count(o Outcome) {
	if r := o.result(); r != "" {
		m.calls.WithLabelValues(r).Inc()
	}
}

var descDepth = prometheus.NewDesc("reservist_outbox_depth",
	"Pending outbox actions, waiting or in flight.", nil, nil)

// backlog renders an outbox's Stats at scrape time, so that the gauge cannot drift.
type backlog struct{ ob Outbox }

func (b backlog) Describe(ch chan<- *prometheus.Desc) { ch <- descDepth }

func (b backlog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := b.ob.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDepth, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(st.Depth))
}

// RegisterBacklog adds the gauges of what ob holds to reg.
func RegisterBacklog(reg prometheus.Registerer, ob Outbox) error {
	return reg.Register(backlog{ob})
}
