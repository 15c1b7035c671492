package boltdb_test

import (
	"testing"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/boltdb"
	"github.com/reservist/reservist/engine/outbox/outboxtest"
)

// TestShared runs the suite every backend passes, on a state directory per test.
func TestShared(t *testing.T) {
	outboxtest.Run(t, func(t *testing.T) outboxtest.Store {
		dir := t.TempDir()
		return func(c outboxtest.Config) (outbox.Outbox, error) {
			ob, err := boltdb.Open(dir, boltdb.Options{Carrier: c.Carrier, Concurrency: c.Concurrency, Drain: c.Drain})
			if err != nil {
				return nil, err
			}
			return ob, nil
		}
	})
}
