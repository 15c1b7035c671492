package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/cli"
	"github.com/reservist/reservist/internal/testkit"
)

// callback is a callback as TaskRouter sends it for reservation n.
func callback(n uint64, taskAttributes string) url.Values { return testkit.Callback(n, taskAttributes) }

// logSink is serve's stderr in tests: it keeps every line, unless told to discard them.
type logSink struct {
	testkit.LogBuffer
	discard atomic.Bool // keep nothing more (benchmarks)
}

func (l *logSink) Write(p []byte) (int, error) {
	if l.discard.Load() {
		return len(p), nil
	}
	return l.LogBuffer.Write(p)
}

func (l *logSink) records(msg string) []map[string]any { return l.Records(msg) }

// served is a `reservist serve` running in the test through serve().
type served struct {
	url, admin string // http://127.0.0.1:PORT of each listener; admin "" when off
	rules      string // the rules file
	token      string
	log        *logSink
	hup        chan os.Signal // stands in for SIGHUP
	cancel     context.CancelFunc
	done       chan error
}

// startServe runs `reservist serve` on free loopback ports with rules (or the
// every-instruction fixture) written to a temporary directory, and stops it when the test
// ends. args and env add to the defaults. It learns the addresses from serve's ready hook.
func startServe(t testing.TB, rulesYAML string, env map[string]string, args ...string) *served {
	t.Helper()
	dir := t.TempDir()
	if rulesYAML == "" {
		rulesYAML = testkit.Rules(t, "every-instruction")
	}
	s := &served{rules: filepath.Join(dir, "rules.yaml"), token: env["TWILIO_AUTH_TOKEN"], log: &logSink{},
		hup: make(chan os.Signal, 1), done: make(chan error, 1)}
	if err := os.WriteFile(s.rules, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--rules", s.rules, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--state-dir", filepath.Join(dir, "state"), "--reload-poll", "0"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan listening, 1)
	h := hooks{ready: func(l listening) { ready <- l }, hup: s.hup, settle: time.Millisecond}
	go func() { s.done <- serve(ctx, all, func(k string) string { return env[k] }, s.log, h) }()
	select {
	case l := <-ready:
		s.url = "http://" + l.callback
		if l.admin != "" {
			s.admin = "http://" + l.admin
		}
	case err := <-s.done:
		t.Fatalf("serve exited at start: %v\n%s", err, s.log)
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not start listening:\n%s", s.log)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels serve's context and returns what serve returned.
func (s *served) stop(t testing.TB) error {
	t.Helper()
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop:\n%s", s.log)
		return nil
	}
}

// post sends a signed form callback (unsigned without a token).
func (s *served) post(t testing.TB, path string, params url.Values) (int, string) {
	t.Helper()
	return testkit.Post(t, s.url+path, s.token, params)
}

// revision is the revision /rules says serves.
func (s *served) revision(t testing.TB) string {
	t.Helper()
	_, body := get(t, s.admin+"/rules")
	var st struct{ Revision string }
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/rules: %v: %s", err, body)
	}
	return st.Revision
}

// revisionOf is the revision of a rules file's content.
func revisionOf(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
}

func do(t testing.TB, req *http.Request) (int, string) { t.Helper(); return testkit.Do(t, req) }

func get(t testing.TB, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// credentials are the fake TaskRouter's, and sign the callbacks too.
func credentials(fake *taskroutertest.Server) map[string]string {
	return map[string]string{"TWILIO_ACCOUNT_SID": fake.AccountSid, "TWILIO_AUTH_TOKEN": fake.AuthToken}
}

// eventually polls cond until it holds or ten seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, what, cond)
}

// exitOf runs `reservist serve` with args and env and returns the exit code and stderr. It
// is for runs that end by themselves: configuration errors.
func exitOf(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stderr testkit.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), func(k string) string { return env[k] }, io.Discard, &stderr)
	}()
	select {
	case err := <-done:
		var out bytes.Buffer
		code := cli.Code(err, &out)
		return code, stderr.String() + out.String()
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatalf("serve %q did not exit by itself:\n%s", args, stderr.String())
		return 0, ""
	}
}
