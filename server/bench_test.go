package server

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// BenchmarkHandler is the callback handler without a network, with the response budget's
// timer armed (the default) and without it: what the budget costs a callback that is on
// time.
func BenchmarkHandler(b *testing.B) {
	for _, budget := range []time.Duration{3 * time.Second, 0} {
		name := "budget"
		if budget == 0 {
			name = "no-budget"
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, func(o *Options) {
				o.ResponseBudget = budget
				o.Logger = slog.New(slog.DiscardHandler)
				o.DecisionLog = o.Logger
			}).handler
			params := callbackParams(`{"channel":"chat"}`)
			body := params.Encode()
			sig := sign(testToken, "http://reservist.test/assignment_callback", params)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "http://reservist.test/assignment_callback", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set(SignatureHeader, sig)
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
