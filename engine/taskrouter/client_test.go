package taskrouter_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
)

// A REST call's network error names the URL the call went to, under --twilio-base-url, and
// not https://taskrouter.twilio.com, on which twilio-go builds every URL: an operator
// pointing reservist at a proxy must see the proxy in the log.
func TestSenderErrorsNameBaseURL(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	refused := gone.URL + "/egress/"
	gone.Close()
	path := "/v1/Workspaces/" + ws + "/Tasks/" + taskroutertest.NewSid("WT", 1) + "/Reservations/" + taskroutertest.NewSid("WR", 1)

	for _, tc := range []struct {
		name, base, want string
		fault            taskroutertest.Fault
		timeout          time.Duration
	}{
		{name: "dropped", base: fake.URL, want: fake.URL + path, fault: taskroutertest.Fault{Drop: true}},
		{name: "refused, with a path prefix", base: refused, want: strings.TrimSuffix(refused, "/") + path},
		{name: "timed out", base: fake.URL, want: fake.URL + path, fault: taskroutertest.Fault{Hold: make(chan struct{})}, timeout: 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != (taskroutertest.Fault{}) {
				fake.Inject("", tc.fault)
			}
			err := sendTo(t, fake, taskrouter.Config{BaseURL: tc.base, Timeout: tc.timeout}, 1, outbox.Params{"ReservationStatus": "accepted"})
			if err == nil {
				t.Fatal("Send = nil; want a network error")
			}
			if e := err.Error(); !strings.Contains(e, strconv.Quote(tc.want)) || strings.Contains(e, "taskrouter.twilio.com") {
				t.Errorf("Send = %q; want it to name %q, not taskrouter.twilio.com", e, tc.want)
			}
			if outbox.Judge(err) != outbox.Retry {
				t.Errorf("Judge(%v) = %v; want Retry: a network error is retried", err, outbox.Judge(err))
			}
		})
	}
}
