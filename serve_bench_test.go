package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// BenchmarkCallback compares a signed callback through the whole server — run(), chi,
// signature check, the example rules down to their voice rule, metrics and the decision log
// — with a bare net/http handler that parses the form and answers {}. Both run over
// loopback TCP with the same client, in parallel.
//
//	go test -run XXX -bench Callback -benchtime 3s .
func BenchmarkCallback(b *testing.B) {
	// A voice call that no earlier voice rule takes: the `when`s down to the catch-all voice
	// rule are evaluated, and it renders a template.
	params := callback(1, `{"call_sid":"CA0123456789abcdef0123456789abcdef","language":"en","channel":"voice"}`)
	body := params.Encode()

	b.Run("bare", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("{}"))
		}))
		defer srv.Close()
		benchPost(b, srv.URL+"/assignment_callback", body, "", "{}")
	})

	b.Run("reservist", func(b *testing.B) {
		env := map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": taskroutertest.DefaultAuthToken}
		s := startServe(b, testkit.Read(b, "testdata/example/rules.yaml"), env, "--admin-listen", "off")
		s.log.discard.Store(true) // keep the decision log's cost, not a growing copy of it
		u := s.url + "/assignment_callback"
		want := `{"instruction":"conference","from":"+15005550006","end_conference_on_customer_exit":true,"conference_status_callback":"https://example.com/events/call?task=` + testkit.Sid("WT", 1) + `","conference_status_callback_event":"start,end"}`
		benchPost(b, u, body, testkit.Sign(s.token, u, params), want)
	})
}

func benchPost(b *testing.B, u, body, sig, want string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", u, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if sig != "" {
				req.Header.Set("X-Twilio-Signature", sig)
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(got) != want {
				b.Errorf("answer %d %s; want 200 %s", resp.StatusCode, got, want)
				return
			}
		}
	})
}

// BenchmarkCallbackREST is a `via: rest` callback: the {} answer waits for the outbox to
// store the action durably (bbolt, synced), never for the REST call, which goes to a fake
// TaskRouter in the background. Every callback names a new reservation, so every one
// writes.
// BenchmarkCallbackREST answers callbacks whose rule goes by REST. With a TaskRouter that
// never answers (every REST call hangs until the benchmark ends) the {} answers must cost the
// same as with a fast one: they wait on the outbox's durable write, not on the network.
func BenchmarkCallbackREST(b *testing.B) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	hang := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer silent.Close()
	defer close(hang)
	b.Run("taskrouter=fast", func(b *testing.B) { benchmarkCallbackREST(b, fake, fake.URL) })
	b.Run("taskrouter=silent", func(b *testing.B) { benchmarkCallbackREST(b, fake, silent.URL) })
}

func benchmarkCallbackREST(b *testing.B, fake *taskroutertest.Server, taskRouterURL string) {
	// The example's scheduled callback, sent by REST at once rather than two seconds later, so
	// that the outbox sends while callbacks arrive.
	example := testkit.Read(b, "testdata/example/rules.yaml")
	rulesYAML := strings.Replace(example, "    delay: 2s\n", "    via: rest\n", 1)
	if rulesYAML == example {
		b.Fatal("the example rules changed; update this benchmark's edit")
	}
	s := startServe(b, rulesYAML, credentials(fake), "--admin-listen", "off", "--twilio-base-url", taskRouterURL)
	s.log.discard.Store(true)
	u := s.url + "/assignment_callback"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// a callback request: the example's scheduled-callback rule, a call by REST
			params := callback(n.Add(1), `{"type":"callback"}`)
			req, _ := http.NewRequest("POST", u, strings.NewReader(params.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", testkit.Sign(s.token, u, params))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(got) != "{}" {
				b.Errorf("answer %d %s; want 200 {}", resp.StatusCode, got)
				return
			}
		}
	})
}
