package taskrouter_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
)

// An error answer holds nothing once Send returns: no goroutine, timer, connection or
// request waits out a timeout (twilio-go decodes an error body and never closes it).
func TestSenderErrorsLeakNothing(t *testing.T) {
	for _, status := range []int{500, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"code": 20500, "message": "%s", "more_info": "https://www.twilio.com/docs/errors/20500", "status": %d}`,
					http.StatusText(status), status)
			}))
			defer srv.Close()
			s, err := taskrouter.NewSender(taskrouter.Config{
				Credentials: taskrouter.Credentials{AccountSid: taskroutertest.DefaultAccountSid, AuthToken: taskroutertest.DefaultAuthToken},
				BaseURL:     srv.URL,
			})
			if err != nil {
				t.Fatal(err)
			}
			send := func(n uint64) error {
				return s.Send(context.Background(), outbox.Action{ReservationSid: taskroutertest.NewSid("WR", n),
					TaskSid: taskroutertest.NewSid("WT", n), WorkspaceSid: ws, Params: outbox.Params{"ReservationStatus": "accepted"}})
			}
			if err := send(0); err == nil {
				t.Fatal("Send against an erring server = nil")
			}
			before := runtime.NumGoroutine()
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for n := range 125 {
						_ = send(uint64(1 + w*125 + n))
					}
				})
			}
			wg.Wait()
			// Eight callers keep up to eight idle connections, three goroutines each with the
			// server's; a leak keeps one or more per call. The old client timeout held them
			// for 10 s.
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > before+50 {
				if time.Now().After(deadline) {
					t.Fatalf("goroutines %d before 1,000 error answers, %d two seconds after; want them released", before, runtime.NumGoroutine())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
