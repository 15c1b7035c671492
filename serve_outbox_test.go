package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reservist/reservist/server/taskroutertest"
)

const delayedRules = `version: 1
rules:
  - name: later
    when: task.attributes.kind == "later"
    do: accept
    delay: 4s
  - name: now
    when: task.attributes.kind == "now"
    do: accept
    via: rest
`

// buildBinary builds the real reservist command once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "reservist-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "reservist")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is the real binary running `serve` as a child process.
type process struct {
	cmd     *exec.Cmd
	url     string
	token   string
	done    chan struct{} // closed when the process has exited
	waitErr error         // what Wait returned, once done is closed
}

// startProcess runs the built binary on a free loopback port with rules and state in dir.
func startProcess(t *testing.T, bin, dir string, fake *taskroutertest.Server) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--rules", filepath.Join(dir, "rules.yaml"), "--listen", "127.0.0.1:0",
		"--admin-listen", "off", "--state-dir", filepath.Join(dir, "state"), "--reload-poll", "0",
		"--twilio-base-url", fake.URL)
	cmd.Env = append(os.Environ(), "TWILIO_ACCOUNT_SID="+fake.AccountSid, "TWILIO_AUTH_TOKEN="+fake.AuthToken)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, token: fake.AuthToken, done: make(chan struct{})}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Msg, Callback string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				listening <- rec.Callback
			}
		}
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	select {
	case addr := <-listening:
		p.url = "http://" + addr
	case <-p.done:
		t.Fatalf("reservist exited at start: %v", p.waitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("reservist did not start listening")
	}
	return p
}

func (p *process) post(t *testing.T, params map[string][]string) (int, string) {
	t.Helper()
	s := &served{url: p.url, token: p.token}
	return s.post(t, "/assignment_callback", params)
}

// The outbox is durable: a process killed with SIGKILL while a delayed action is pending
// carries it out after a restart, exactly once.
func TestServeOutboxSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(delayedRules), 0o644); err != nil {
		t.Fatal(err)
	}

	first := startProcess(t, bin, dir, fake)
	cb := callback(1, `{"kind":"later"}`)
	if code, body := first.post(t, cb); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s; want 200 {}", code, body)
	}
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown, no flush
		t.Fatal(err)
	}
	<-first.done
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
	if code, body := second.post(t, cb); code != 200 || body != "{}" {
		t.Fatalf("repeated callback = %d %s; want 200 {}", code, body)
	}
	if err := second.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-second.done
	if second.waitErr != nil {
		t.Errorf("reservist after SIGINT: %v; want exit 0", second.waitErr)
	}
	if n := len(fake.RequestsFor(want)); n != 1 {
		t.Errorf("TaskRouter got %d REST calls for %s; want exactly 1", n, want)
	}
}

// A burst of callbacks, each sent twice and concurrently, gives one REST action each.
func TestServeOutboxBurst(t *testing.T) {
	fake := taskroutertest.NewServer(taskroutertest.Config{})
	defer fake.Close()
	s := startServe(t, delayedRules, credentials(fake), "--twilio-base-url", fake.URL)
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for i := range 2 * n {
		wg.Go(func() {
			cb := callback(uint64(i%n+1), `{"kind":"now"}`)
			req, _ := http.NewRequest("POST", s.url+"/assignment_callback", strings.NewReader(cb.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", testSign(s.token, s.url+"/assignment_callback", cb))
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
