package outcomes

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Tracker's Prometheus metrics.
type metrics struct {
	outcomes  *prometheus.CounterVec
	unmatched *prometheus.CounterVec
	dropped   *prometheus.CounterVec

	droppedFull, droppedQueue, droppedStore prometheus.Counter

	failing atomic.Bool // the shared store's last operation failed
}

// Reasons a decision is dropped: the dropped metric's reason label.
const (
	DroppedFull  = "full"  // memory was at its bound: the oldest decision was forgotten early
	DroppedQueue = "queue" // the shared writer's queue was full
	DroppedStore = "store" // the shared store refused the batch
)

func newMetrics() *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_reservation_outcomes_total",
			Help: "Reservations by the rule that decided them and how they ended, from TaskRouter's Event callbacks: accepted, rejected, timeout, canceled, rescinded.",
		}, []string{"rule", "outcome"}),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_reservation_outcomes_unmatched_total",
			Help: "Reservation outcome events whose decision reservist does not remember: decided before the window, by another process, forgotten, or not decided by reservist at all.",
		}, []string{"outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_reservation_decisions_dropped_total",
			Help: "Decisions not remembered for their outcomes, by reason: full (memory at its bound), queue (the database writer's queue was full), store (the database refused the batch).",
		}, []string{"reason"}),
	}
	m.droppedFull = m.dropped.WithLabelValues(DroppedFull)
	m.droppedQueue = m.dropped.WithLabelValues(DroppedQueue)
	m.droppedStore = m.dropped.WithLabelValues(DroppedStore)
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.outcomes, m.unmatched, m.dropped}
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
