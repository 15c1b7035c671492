package server

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/reservist/reservist/internal/testkit"
)

// FuzzCallback sends arbitrary form bodies through the callback handler, signed or not:
// nothing a caller sends may crash it or make it answer 5xx, and every answer is JSON. The
// one 5xx allowed is the documented 503 for a delayed REST decision that cannot be kept,
// which a hand-made callback without its SIDs gets.
func FuzzCallback(f *testing.F) {
	for _, seed := range []string{
		callbackParams(`{"channel":"chat"}`).Encode(),
		callbackParams(`{"kind":"rest"}`).Encode(),
		callbackParams(`{"kind":"delayed"}`).Encode(),
		callbackParams(`{"kind":"broken","n":"x"}`).Encode(),
		callbackParams(`[]`).Encode(),
		callbackParams(`{"channel":`).Encode(),
		"TaskAttributes=%7B%7D&WorkerAttributes=%7B%7D",
		"TaskAttributes=null&WorkerAttributes=1&TaskAge=-1&TaskPriority=1e9",
		"TaskAge=99999999999999999999999&TaskAttributes=%7B%7D&WorkerAttributes=%7B%7D",
		"ReservationSid=WR1&TaskAttributes=%7B%22kind%22%3A%22rest%22%7D&WorkerAttributes=%7B%7D",
		"a=%zz",
		"a=1;b=2",
		"TaskAttributes=%7B%22a%22%3A%7B%22a%22%3A%7B%22a%22%3A%5B%5B%5B%5B%5D%5D%5D%5D%7D%7D%7D&WorkerAttributes=%7B%7D",
		"TaskAttributes=" + url.QueryEscape(strings.Repeat("[", 10000)),
		"TaskAttributes=%7B%22channel%22%3A%22chat%22%7D&TaskAttributes=%7B%7D&WorkerAttributes=%7B%7D",
		"",
		"&&&==&",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	handler := newHarness(f, func(o *Options) {
		o.Logger = slog.New(slog.DiscardHandler) // a long run would keep every line
		o.DecisionLog = o.Logger
	}).handler
	f.Fuzz(func(t *testing.T, form string, signed bool) {
		req := httptest.NewRequest("POST", "http://reservist.test/assignment_callback", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if params, err := url.ParseQuery(form); err == nil && signed {
			req.Header.Set(SignatureHeader, testkit.Sign(testToken, "http://reservist.test/assignment_callback", params))
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code == 503 && strings.TrimSpace(rec.Body.String()) == `{"error":"`+errUnavailable.Error()+`"}` {
			return
		}
		if rec.Code >= 500 {
			t.Fatalf("POST %q = %d %s", form, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("POST %q = %d %q (%s); want JSON", form, rec.Code, rec.Body, rec.Header().Get("Content-Type"))
		}
	})
}
