package server

import (
	"net/http"
	"testing"
)

// The callback paths are served ahead of the router; every path is still routed as the
// router alone would route it.
func TestRoutesAroundTheCallbackPaths(t *testing.T) {
	h := newHarness(t)
	params := callbackParams(`{"channel":"chat"}`)
	for _, p := range []string{"/assignment_callback", "/taskrouter/assignment_callback"} {
		if resp := h.post(t, p, params); resp.StatusCode != http.StatusOK {
			t.Errorf("POST %s = %d; want 200", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/assignment%5Fcallback", "/assignment_callback/", "/Assignment_callback", "/assignment_callback%2F", "/taskrouter"} {
		wantError(t, h.post(t, p, params), http.StatusNotFound)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest("GET", h.srv.URL+p, nil)
		if resp := h.do(t, req); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d; want 200", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("DELETE", h.srv.URL+"/assignment_callback", nil)
	resp := h.do(t, req)
	wantError(t, resp, http.StatusMethodNotAllowed)
	if got := resp.Header.Get("Allow"); got != "GET, POST" {
		t.Errorf("DELETE /assignment_callback: Allow = %q; want GET, POST", got)
	}
}
