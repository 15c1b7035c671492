package server

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/internal/testkit"
)

// BenchmarkHandlerOutcomes is the callback handler with and without the outcomes tracker
// remembering each decision, over callbacks for distinct reservations: what remembering
// costs a callback.
func BenchmarkHandlerOutcomes(b *testing.B) {
	const n = 1 << 12
	bodies, sigs := make([]string, n), make([]string, n)
	for i := range n {
		params := callbackParams(`{"channel":"chat"}`)
		params.Set("ReservationSid", testkit.Sid("WR", uint64(i)*2654435761))
		bodies[i] = params.Encode()
		sigs[i] = testkit.Sign(testToken, "http://reservist.test/assignment_callback", params)
	}
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var tracker *outcomes.Tracker
			if on {
				tracker = outcomes.New(outcomes.Options{Window: 12 * time.Minute})
			}
			h := newHarness(b, func(o *Options) {
				o.Logger = slog.New(slog.DiscardHandler)
				o.DecisionLog = o.Logger
				o.Outcomes = tracker
			}).handler
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) % n
					req := httptest.NewRequest("POST", "http://reservist.test/assignment_callback", strings.NewReader(bodies[i]))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set(SignatureHeader, sigs[i])
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatalf("answer %d %s", rec.Code, rec.Body)
					}
				}
			})
		})
	}
}
