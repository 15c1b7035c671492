package server

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/internal/testkit"
)

// Options.Observe sees every authentic callback once, with its decision, and nothing that
// was refused before deciding.
func TestCallbackObserve(t *testing.T) {
	type seen struct {
		params url.Values
		rule   string
	}
	var (
		mu  sync.Mutex
		got []seen
	)
	h := newHarness(t, func(o *Options) {
		o.Observe = func(params url.Values, d *engine.Decision) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, seen{params, d.Rule})
		}
	})
	chat := callbackParams(`{"channel":"chat"}`)
	wantJSON(t, h.post(t, "/assignment_callback", chat), 200, `{"instruction":"accept"}`)
	bad := callbackParams(`not json`)
	h.post(t, "/assignment_callback", bad).Body.Close() // on_error: still authentic, still observed

	// Refused: wrong signature, wrong method, not a form.
	req, _ := http.NewRequest("POST", h.srv.URL+"/assignment_callback", strings.NewReader(chat.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(SignatureHeader, "bogus")
	wantError(t, h.do(t, req), 403)
	req, _ = http.NewRequest("PUT", h.srv.URL+"/assignment_callback", nil)
	wantError(t, h.do(t, req), 405)
	req, _ = http.NewRequest("POST", h.srv.URL+"/assignment_callback", strings.NewReader("x"))
	req.Header.Set(SignatureHeader, testkit.Sign(h.token, h.srv.URL+"/assignment_callback", nil))
	wantError(t, h.do(t, req), 400)

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("Observe called %d times; want 2 (the authentic callbacks only)", len(got))
	}
	if got[0].rule != "chat" || got[0].params.Encode() != chat.Encode() {
		t.Errorf("first observed = %s %q; want chat %q", got[0].rule, got[0].params.Encode(), chat.Encode())
	}
	if got[1].rule != "on_error" {
		t.Errorf("second observed rule = %s; want on_error", got[1].rule)
	}
}
