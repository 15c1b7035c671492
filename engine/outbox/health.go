package outbox

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// StoreHealth says whether a backend's store works. Both backends report to it: every
// failed store operation is counted in reservist_outbox_store_errors_total{op}, Err makes
// /readyz 503 until an operation succeeds again, and the log says when the store starts
// failing, every few seconds while it goes on failing, and when it works again. It is safe
// for concurrent use.
type StoreHealth struct {
	metrics *Metrics
	log     *slog.Logger

	mu    sync.Mutex
	err   error     // the last failure; nil while the store works
	since time.Time // when it started failing
	lines sampler   // "still failing" lines
}

// Values of the op label of reservist_outbox_store_errors_total.
const (
	StoreOpPut    = "put"    // storing a new action failed, or did not finish within the response budget
	StoreOpFinish = "finish" // recording how an action ended failed; it is retried
	StoreOpCheck  = "check"  // the store itself: its file removed or replaced, a commit stuck, a probe failed
)

// storeFailingLogEvery is how often, at most, the log repeats that the store still fails.
const storeFailingLogEvery = 10 * time.Second

// NewStoreHealth returns the health of a store that works, counting into m (nil: metrics
// nobody collects) and logging to log (nil: discarded).
func NewStoreHealth(m *Metrics, log *slog.Logger) *StoreHealth {
	if m == nil {
		m = NewMetrics()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m.storeUp.Set(1)
	return &StoreHealth{metrics: m, log: log, lines: sampler{every: storeFailingLogEvery}}
}

// Failed records that a store operation failed.
func (h *StoreHealth) Failed(op string, err error) {
	h.metrics.storeErrors.WithLabelValues(op).Inc()
	h.metrics.storeUp.Set(0)
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.since = now
		h.lines = sampler{every: storeFailingLogEvery}
		h.lines.allow(now)
		h.err = err
		h.log.Error("outbox store failing: decisions that go by REST are answered synchronously (503 with a delay) and /readyz is 503 until it works again",
			slog.String("op", op), slog.String("error", err.Error()))
		return
	}
	h.err = err
	if ok, n := h.lines.allow(now); ok {
		h.log.Error("outbox store still failing", slog.String("op", op), slog.String("error", err.Error()),
			slog.Float64("failing_seconds", now.Sub(h.since).Seconds()), slog.Int("failures_not_logged", n))
	}
}

// Worked records that a store operation succeeded: the store works again if it failed.
func (h *StoreHealth) Worked() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return
	}
	h.err = nil
	h.metrics.storeUp.Set(1)
	h.log.Info("outbox store works again", slog.Float64("failed_seconds", time.Since(h.since).Seconds()))
}

// Err is nil while the store works, else why it does not.
func (h *StoreHealth) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return nil
	}
	return fmt.Errorf("outbox store failing since %s: %w", h.since.UTC().Format(time.RFC3339), h.err)
}
