package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// startProcess runs the built binary with rules and state in dir, against the fake TaskRouter.
func startProcess(t *testing.T, bin, dir string, fake *taskroutertest.Server) *testkit.Process {
	t.Helper()
	return testkit.StartProcess(t, bin, []string{"TWILIO_ACCOUNT_SID=" + fake.AccountSid, "TWILIO_AUTH_TOKEN=" + fake.AuthToken},
		"--rules", filepath.Join(dir, "rules.yaml"), "--state-dir", filepath.Join(dir, "state"), "--reload-poll", "0",
		"--twilio-base-url", fake.URL)
}

// The outbox is durable: a process killed with SIGKILL while a delayed action is pending
// carries it out after a restart, exactly once.
func TestServeOutboxSurvivesSIGKILL(t *testing.T) {
	bin := testkit.Binary(t)
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(testkit.Rules(t, "delayed")), 0o644); err != nil {
		t.Fatal(err)
	}

	first := startProcess(t, bin, dir, fake)
	cb := callback(1, `{"kind":"later"}`)
	if code, body := first.Post(t, "/assignment_callback", fake.AuthToken, cb); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s; want 200 {}", code, body)
	}
	first.Signal(t, syscall.SIGKILL) // no shutdown, no flush
	first.Wait(t, 10*time.Second)
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("TaskRouter got %d requests before the 4s delay was up; the test needs the action pending at the kill", n)
	}

	second := startProcess(t, bin, dir, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reqs, err := fake.WaitRequests(ctx, 1)
	if err != nil {
		t.Fatalf("the pending action was not carried out after the restart: %v", err)
	}
	want := taskroutertest.NewSid("WR", 1)
	if reqs[0].ReservationSid != want || reqs[0].Form.Get("ReservationStatus") != "accepted" {
		t.Fatalf("REST call = %s %v; want ReservationStatus=accepted for %s", reqs[0].Path, reqs[0].Form, want)
	}
	// TaskRouter may call again for the same reservation: the restarted process remembers it.
	if code, body := second.Post(t, "/assignment_callback", fake.AuthToken, cb); code != 200 || body != "{}" {
		t.Fatalf("repeated callback = %d %s; want 200 {}", code, body)
	}
	second.Signal(t, syscall.SIGINT)
	if code := second.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("reservist after SIGINT exited %d; want 0", code)
	}
	if n := len(fake.RequestsFor(want)); n != 1 {
		t.Errorf("TaskRouter got %d REST calls for %s; want exactly 1", n, want)
	}
}

// A burst of callbacks, each sent twice and concurrently, gives one REST action each.
func TestServeOutboxBurst(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	// The burst is about group commits and once-per-reservation; the response budget, which
	// also bounds each commit, is long enough that a loaded machine (the race detector on two
	// cores) does not turn slow commits into synchronous answers.
	s := startServe(t, testkit.Rules(t, "delayed"), credentials(fake), "--twilio-base-url", fake.URL, "--response-budget", "20s")
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for i := range 2 * n {
		wg.Go(func() {
			cb := callback(uint64(i%n+1), `{"kind":"now"}`)
			req, _ := http.NewRequest("POST", s.url+"/assignment_callback", strings.NewReader(cb.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", testkit.Sign(s.token, s.url+"/assignment_callback", cb))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "{}" {
				errs <- fmt.Sprintf("callback %d = %d %s", i, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := fake.WaitRequests(ctx, n); err != nil {
		t.Fatalf("waiting for %d REST calls: %v (got %d)", n, err, len(fake.Requests()))
	}
	// Stop the server so that no call can still be on its way, then count.
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range fake.Requests() {
		seen[r.ReservationSid]++
	}
	if len(seen) != n {
		t.Errorf("REST calls reached %d reservations; want %d", len(seen), n)
	}
	for sid, c := range seen {
		if c != 1 {
			t.Errorf("reservation %s got %d REST calls; want 1", sid, c)
		}
	}
}
