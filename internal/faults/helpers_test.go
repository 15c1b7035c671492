package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/testkit"
)

// bin is the binary under test: RESERVIST_FAULTS_BINARY, or the repository's own build.
func bin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("RESERVIST_FAULTS_BINARY"); b != "" {
		return b
	}
	return testkit.Binary(t)
}

// rulesFile writes rules into a fresh directory and returns the file's path.
func rulesFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// restRules decide every callback by REST: kind "rest" at once, kind "later" after a minute
// (so that it stays pending), anything else answered synchronously.
const restRules = `version: 1
rules:
  - name: rest
    when: task.attributes.kind == "rest"
    do: accept
    via: rest
  - name: later
    when: task.attributes.kind == "later"
    do: accept
    delay: 60s
  - name: now
    when: true
    do: accept
`

// twilioEnv are the credentials of the fake TaskRouter, which turn REST calls on and make
// callbacks signed.
func twilioEnv(accountSid, token string) []string {
	return []string{"TWILIO_ACCOUNT_SID=" + accountSid, "TWILIO_AUTH_TOKEN=" + token}
}

// server is reservist under test, with what it needs to be called.
type server struct {
	*testkit.Process
	token    string
	rules    string
	stateDir string
}

// start runs the binary with rules in stateDir against the TaskRouter at trURL.
func start(t *testing.T, rules, stateDir, trURL string, extra ...string) *server {
	t.Helper()
	args := append([]string{"--rules", rules, "--state-dir", stateDir, "--twilio-base-url", trURL, "--reload-poll", "0"}, extra...)
	p := testkit.StartProcess(t, bin(t), twilioEnv(taskroutertest.DefaultAccountSid, taskroutertest.DefaultAuthToken), args...)
	return &server{Process: p, token: taskroutertest.DefaultAuthToken, rules: rules, stateDir: stateDir}
}

// callback posts callback n, signed; it returns the status and body, or an error when no
// answer came (the process died, say).
func (s *server) callback(n uint64, taskAttributes string) (int, string, error) {
	return post(s.URL+"/assignment_callback", s.token, testkit.Callback(n, taskAttributes))
}

// post sends a signed form without failing the test: callers count what was answered.
func post(u, token string, params url.Values) (int, string, error) {
	req, err := http.NewRequest("POST", u, strings.NewReader(params.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", testkit.Sign(token, u, params))
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// client bounds every request of the suite: a wedged server fails a test, never hangs it.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get fetches u within the client's timeout.
func get(u string) (int, string, error) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric reads a sample from the admin listener's /metrics: the first line that starts
// with series (a name, or a name with its labels) followed by a space.
func (s *server) metric(t *testing.T, series string) float64 {
	t.Helper()
	v, err := s.tryMetric(series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (s *server) tryMetric(series string) (float64, error) {
	code, body, err := get(s.Admin + "/metrics")
	if err != nil || code != 200 {
		return 0, fmt.Errorf("GET /metrics = %d, %v", code, err)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", series)
}

// ready is /readyz's status.
func (s *server) ready() int {
	code, _, _ := get(s.URL + "/readyz")
	return code
}

// rssBytes is a process's resident memory, from /proc.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// openFiles counts a process's file descriptors, from /proc.
func openFiles(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// watchRSS kills the process if its memory passes limit (a regression reading a device
// whole would take the machine's), and reports the most it saw.
func watchRSS(t *testing.T, p *testkit.Process, limit int64) (peak func() int64) {
	t.Helper()
	var most atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.Done:
				return
			case <-tick.C:
			}
			r := rssBytes(p.Cmd.Process.Pid)
			if r > most.Load() {
				most.Store(r)
			}
			if r > limit {
				_ = p.Cmd.Process.Signal(syscall.SIGKILL)
				return
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func() int64 { return most.Load() }
}

// failingTaskRouter answers every REST call the way its mode says: "500", "429" (without
// Retry-After), "hang" (never, until the client gives up) or "ok"; it counts the calls.
type failingTaskRouter struct {
	URL   string
	mode  atomic.Value // string
	calls atomic.Int64
	stop  chan struct{}
	srv   *http.Server
}

func newFailingTaskRouter(t *testing.T, mode string) *failingTaskRouter {
	t.Helper()
	f := &failingTaskRouter{stop: make(chan struct{})}
	f.mode.Store(mode)
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch f.mode.Load().(string) {
		case "500":
			w.WriteHeader(500)
			io.WriteString(w, `{"code":20500,"message":"Internal Server Error","more_info":"https://www.twilio.com/docs/errors/20500","status":500}`)
		case "429":
			w.WriteHeader(429)
			io.WriteString(w, `{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`)
		case "hang":
			select {
			case <-r.Context().Done():
			case <-f.stop:
			}
		default:
			io.WriteString(w, `{"sid":"`+r.URL.Path[len(r.URL.Path)-34:]+`","reservation_status":"accepted"}`)
		}
	})}
	ln := listen(t)
	f.URL = "http://" + ln.Addr().String()
	go f.srv.Serve(ln)
	t.Cleanup(func() {
		close(f.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.srv.Shutdown(ctx)
	})
	return f
}
