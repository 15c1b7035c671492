package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every admin route answers only requests addressed to localhost or an IP address, and its
// POST endpoints refuse what a browser sends from another origin.
func TestAdminRefusesForeignHostsAndOrigins(t *testing.T) {
	h := newHarness(t)
	admin := New(Options{Rules: h.rules, Gatherer: h.registry}).Admin()
	do := func(method, path, host string, header map[string]string) int {
		req := httptest.NewRequest(method, path, strings.NewReader("x=1"))
		req.Host = host
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" && !strings.HasPrefix(ct, "text/plain; version=0.0.4") && !strings.HasPrefix(ct, "text/plain; version") {
			t.Errorf("%s %s (Host %s) Content-Type %q; want JSON (or the metrics' text format)", method, path, host, ct)
		}
		return rec.Code
	}
	for _, tc := range []struct {
		method, path, host string
		header             map[string]string
		want               int
	}{
		// DNS rebinding: a page's own name pointed at the listener.
		{"GET", "/metrics", "evil.example:9090", nil, http.StatusForbidden},
		{"GET", "/rules", "evil.example", nil, http.StatusForbidden},
		{"POST", "/-/reload", "rebind.evil.example:9090", nil, http.StatusForbidden},
		{"GET", "/metrics", "127.0.0.1:9090", nil, http.StatusOK},
		{"GET", "/metrics", "10.1.2.3:9090", nil, http.StatusOK}, // Prometheus scrapes by pod IP
		{"GET", "/rules", "localhost:9090", nil, http.StatusOK},
		// Cross-site posts: a form or a text/plain fetch from another page.
		{"POST", "/-/reload", "127.0.0.1:9090", map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, http.StatusForbidden},
		{"POST", "/-/reload", "127.0.0.1:9090", map[string]string{"Origin": "http://127.0.0.1:8000", "Content-Type": "application/x-www-form-urlencoded"}, http.StatusForbidden},
		{"POST", "/-/reload", "127.0.0.1:9090", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"POST", "/-/reload", "localhost:9090", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"}, http.StatusForbidden},
		{"POST", "/-/reload", "127.0.0.1:9090", map[string]string{"Origin": "null"}, http.StatusForbidden},
		// The listener's own page, and clients that are no browser.
		{"POST", "/-/reload", "127.0.0.1:9090", map[string]string{"Origin": "http://127.0.0.1:9090", "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"POST", "/-/reload", "127.0.0.1:9090", map[string]string{"Origin": "http://127.0.0.1:9090"}, http.StatusOK},
		{"POST", "/-/reload", "127.0.0.1:9090", nil, http.StatusOK},
	} {
		if got := do(tc.method, tc.path, tc.host, tc.header); got != tc.want {
			t.Errorf("%s %s Host %s %v = %d; want %d", tc.method, tc.path, tc.host, tc.header, got, tc.want)
		}
	}
}
