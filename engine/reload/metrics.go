package reload

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descSuccessful = prometheus.NewDesc("reservist_rules_last_reload_successful",
		"Whether the last rules reload succeeded (1) or failed and older rules still serve (0).", nil, nil)
	descSuccessTime = prometheus.NewDesc("reservist_rules_last_reload_success_timestamp_seconds",
		"Time of the last successful rules load, in seconds since the epoch.", nil, nil)
	descInfo = prometheus.NewDesc("reservist_rules_info",
		"The rules revision serving now (sha256 of rules.yaml); always 1.", []string{"revision"}, nil)
	descReloads = prometheus.NewDesc("reservist_rules_reloads_total",
		"Rules reloads tried, by result (success or failure).", []string{"result"}, nil)
)

// collector renders Status at scrape time, so the metrics cannot drift from what /rules and
// /readyz say, and the info series follows the serving revision without a stale one left
// behind.
type collector struct{ r *Reloader }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSuccessful
	ch <- descSuccessTime
	ch <- descInfo
	ch <- descReloads
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Status()
	ok := 1.0
	if s.Stale {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(descSuccessful, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(descSuccessTime, prometheus.GaugeValue,
		float64(s.LastSuccessAt.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, s.Revision)
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(s.Succeeded), "success")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(s.Failed), "failure")
}

// Register adds the reload metrics to reg: reservist_rules_last_reload_successful,
// reservist_rules_last_reload_success_timestamp_seconds, reservist_rules_info{revision}
// and reservist_rules_reloads_total{result}.
func (r *Reloader) Register(reg prometheus.Registerer) error {
	return reg.Register(collector{r})
}
