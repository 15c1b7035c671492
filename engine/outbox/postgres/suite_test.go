package postgres

import (
	"testing"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/outboxtest"
	"github.com/reservist/reservist/internal/pgtest"
)

// TestSuite runs the suite every backend passes, on a database per test.
func TestSuite(t *testing.T) {
	t.Parallel()
	outboxtest.Run(t, func(t *testing.T) outboxtest.Store {
		url := pgtest.Shared(t).NewDatabase(t)
		return func(c outboxtest.Config) (outbox.Outbox, error) {
			ob, err := Open(url, Options{Carrier: c.Carrier, Concurrency: c.Concurrency, Drain: c.Drain})
			if err != nil {
				return nil, err
			}
			return ob, nil
		}
	})
}
