package server

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Answers carry their Content-Length, not chunked encoding: net/http adds it to a response
// written in one piece, and the budget's early {} sets it before flushing.
func TestAnswersHaveContentLength(t *testing.T) {
	check := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if resp.ContentLength < 0 {
			// Not read: a chunked early answer would not end while the decision is held.
			t.Fatalf("%s: no Content-Length (Transfer-Encoding %v)", resp.Request.URL.Path, resp.TransferEncoding)
		}
		n := len(body(t, resp))
		if resp.ContentLength != int64(n) || len(resp.TransferEncoding) > 0 {
			t.Errorf("%s: Content-Length %d, Transfer-Encoding %v for a body of %d bytes; want the length, not chunked",
				resp.Request.URL.Path, resp.ContentLength, resp.TransferEncoding, n)
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(n) {
			t.Errorf("%s: Content-Length header %q; want %d", resp.Request.URL.Path, got, n)
		}
	}
	h := newHarness(t)
	check(t, h.post(t, "/assignment_callback", callbackParams(`{"channel":"chat"}`)))
	check(t, h.post(t, "/assignment_callback", callbackParams(`{}`)))
	check(t, h.post(t, "/nowhere", callbackParams(`{}`)))

	release := make(chan struct{})
	defer close(release)
	late := newHarness(t, func(o *Options) {
		o.ResponseBudget = time.Millisecond
		o.beforeDecide = func() { <-release }
	})
	check(t, late.post(t, "/assignment_callback", callbackParams(`{"channel":"chat"}`)))
}
