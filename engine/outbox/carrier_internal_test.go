package outbox

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	c := NewCarrier(CarrierOptions{BackoffBase: 500 * time.Millisecond, BackoffMax: 4 * time.Second})
	for n, ceiling := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		for range 200 {
			if d := c.backoff(n); d <= 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want in (0, %v]", n, d, ceiling)
			}
		}
	}
	if d := c.backoff(1000); d <= 0 || d > 4*time.Second {
		t.Errorf("backoff(1000) = %v", d)
	}
}
