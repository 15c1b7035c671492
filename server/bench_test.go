package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/internal/logbuf"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
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
			sig := testkit.Sign(testToken, "http://reservist.test/assignment_callback", params)
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

// voiceParams is the example's voice callback (testdata/example/cases/voice.form), the one
// the load-test runner sends.
func voiceParams(t testing.TB) url.Values {
	form, err := os.ReadFile("../testdata/example/cases/voice.form")
	if err != nil {
		t.Fatal(err)
	}
	params, err := url.ParseQuery(strings.TrimSpace(string(form)))
	if err != nil {
		t.Fatal(err)
	}
	return params
}

// BenchmarkSignature checks X-Twilio-Signature on a callback, as for a request that arrived
// with an explicit port (both URL forms are tried).
func BenchmarkSignature(b *testing.B) {
	params := voiceParams(b)
	const u = "http://127.0.0.1:8080/assignment_callback"
	sig := testkit.Sign(testToken, u, params)
	v := NewValidator(testToken)
	b.ReportAllocs()
	for b.Loop() {
		if !v.Valid(u, params, sig) {
			b.Fatal("Valid = false; want true")
		}
	}
}

// BenchmarkForm reads a callback's body and parses its form.
func BenchmarkForm(b *testing.B) {
	body := voiceParams(b).Encode()
	c := newCallback(Options{})
	req := httptest.NewRequest("POST", "http://reservist.test/assignment_callback", nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rd := strings.NewReader(body)
	req.Body = io.NopCloser(rd)
	req.ContentLength = int64(len(body))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		if _, err := c.params(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecord is what a decided callback costs after its answer: the metrics and the
// decision log line, written as serve writes it (JSON, batched by logbuf).
func BenchmarkRecord(b *testing.B) {
	set, err := rules.Parse("rules.yaml", []byte(testkit.Rules(b, "server")))
	if err != nil {
		b.Fatal(err)
	}
	d := engine.New(set).Decide(callbackParams(`{"channel":"chat"}`), time.Time{})
	c := newCallback(Options{
		DecisionLog: slog.New(logbuf.NewJSONHandler(logbuf.New(io.Discard, 64<<10))),
		Metrics:     NewMetrics(),
	})
	res := result{via: rules.Response, outcome: OutcomeAnswered}
	b.ReportAllocs()
	for b.Loop() {
		c.record(d, res, 150*time.Microsecond)
	}
}

// BenchmarkHandlerExample is one callback through New as serve sets it up — the example
// rules, the voice callback that only their last rule takes, a signature, the budget's
// timer, metrics and the decision log as JSON lines into logbuf — without the network and
// without allocating the request: what reservist adds to net/http's own work.
func BenchmarkHandlerExample(b *testing.B) {
	rl, err := reload.New(testkit.Path(b, "testdata/example/rules.yaml"), reload.Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := New(Options{
		Rules:          rl,
		Outbox:         &fakeOutbox{},
		CallbackPaths:  []string{"/assignment_callback"},
		AuthToken:      testToken,
		ResponseBudget: 3 * time.Second,
		DecisionLog:    slog.New(logbuf.NewJSONHandler(logbuf.New(io.Discard, 64<<10))),
		Metrics:        NewMetrics(),
	}).Callbacks()
	params := voiceParams(b)
	body := params.Encode()
	const u = "http://127.0.0.1:8080/assignment_callback"
	req := httptest.NewRequest("POST", u, nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(SignatureHeader, testkit.Sign(testToken, u, params))
	rd := strings.NewReader(body)
	req.Body, req.ContentLength = io.NopCloser(rd), int64(len(body))
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("answer %d", w.code)
		}
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	code   int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
