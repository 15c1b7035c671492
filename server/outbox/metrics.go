package outbox

import "github.com/prometheus/client_golang/prometheus"

// Values of the result label of reservist_rest_calls_total.
const (
	resultOK         = "ok"
	resultRetry      = "retry"
	resultFinalError = "final_error"
	resultAbandoned  = "abandoned"
	resultDryRun     = "dry_run"
)

type metrics struct {
	calls *prometheus.CounterVec
	delay prometheus.Histogram
	depth prometheus.GaugeFunc
	reg   prometheus.Registerer
}

// newMetrics makes the outbox's metrics and registers them with reg, if
// any. depth is read at scrape time, so the gauge cannot drift.
func newMetrics(reg prometheus.Registerer, depth func() int) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_rest_calls_total",
			Help: "Outbox REST attempts by result: ok, retry (failed, will retry), final_error (refused, not retried), abandoned (deadline passed), dry_run (no credentials).",
		}, []string{"result"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reservist_rest_success_delay_seconds",
			Help: "Time from the assignment callback's arrival to the REST call that carried its decision out.",
			// From an immediate call to the default 120s reservation timeout.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		depth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reservist_outbox_depth",
			Help: "Pending outbox actions, waiting or in flight.",
		}, func() float64 { return float64(depth()) }),
		reg: reg,
	}
	// Every result shows from the start, at zero, so rate() and alerts
	// work before the first occurrence.
	for _, r := range []string{resultOK, resultRetry, resultFinalError, resultAbandoned, resultDryRun} {
		m.calls.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{m.calls, m.delay, m.depth} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, err
		}
		done = append(done, c)
	}
	return m, nil
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	m.reg.Unregister(m.calls)
	m.reg.Unregister(m.delay)
	m.reg.Unregister(m.depth)
}
