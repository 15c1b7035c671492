package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/reservist/reservist/internal/testkit"
)

// opsProcess runs the built binary on the every-instruction rules, unsigned (loopback), with
// args added.
func opsProcess(t *testing.T, args ...string) *testkit.Process {
	t.Helper()
	bin := testkit.Binary(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(testkit.Rules(t, "every-instruction")), 0o644); err != nil {
		t.Fatal(err)
	}
	return testkit.StartProcess(t, bin, []string{"TWILIO_AUTH_TOKEN=", "TWILIO_ACCOUNT_SID="},
		append([]string{"--rules", rules, "--state-dir", filepath.Join(dir, "state"), "--reload-poll", "0"}, args...)...)
}

// untilUnready polls /readyz until it answers 503, and returns its body.
func untilUnready(t *testing.T, p *testkit.Process, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := p.Ready()
		if code == http.StatusServiceUnavailable {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %s after %v:\n%s", code, body, within, p.Log)
		}
		time.Sleep(time.Millisecond)
	}
}

// On SIGTERM with --shutdown-delay, /readyz answers 503 at once, saying shutting_down, while
// callbacks are still answered; after the delay the process drains and exits 0.
func TestServeShutdownDelay(t *testing.T) {
	const delay = 2 * time.Second
	p := opsProcess(t, "--shutdown-delay", delay.String())
	accept := callback(1, `{"do":"accept"}`)
	if code, body := p.Post(t, "/assignment_callback", "", accept); code != 200 || body != `{"instruction":"accept"}` {
		t.Fatalf("callback before SIGTERM = %d %s; want 200 accept", code, body)
	}

	sent := time.Now()
	p.Signal(t, syscall.SIGTERM)
	body := untilUnready(t, p, delay)
	unready := time.Since(sent)
	if !strings.Contains(body, `"shutting_down":true`) {
		t.Errorf("/readyz during the delay = %s; want \"shutting_down\": true", body)
	}
	for n := uint64(2); n <= 4; n++ {
		if code, body := p.Post(t, "/assignment_callback", "", callback(n, `{"do":"accept"}`)); code != 200 || body != `{"instruction":"accept"}` {
			t.Errorf("callback %d during the delay = %d %s; want 200 accept", n, code, body)
		}
	}
	answered := time.Since(sent)
	if code, _ := get(t, p.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz during the delay = %d; want 200", code)
	}
	if code := p.Wait(t, delay+30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM; want 0\n%s", code, p.Log)
	}
	exited := time.Since(sent)
	if exited < delay {
		t.Errorf("exited %v after SIGTERM; want no sooner than --shutdown-delay %v", exited, delay)
	}
	t.Logf("SIGTERM → /readyz 503 in %v; callbacks answered until %v; exit 0 after %v (--shutdown-delay %v)",
		unready.Round(time.Microsecond), answered.Round(time.Millisecond), exited.Round(time.Millisecond), delay)
	if !strings.Contains(p.Log.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped line in the log:\n%s", p.Log)
	}
}

// A second SIGTERM or SIGINT during --shutdown-delay cuts it short: the process drains and
// exits 0 at once.
func TestServeShutdownDelaySecondSignal(t *testing.T) {
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(second.String(), func(t *testing.T) {
			p := opsProcess(t, "--shutdown-delay", "10m")
			sent := time.Now()
			p.Signal(t, syscall.SIGTERM)
			untilUnready(t, p, 10*time.Second) // the second signal is watched from here on
			p.Signal(t, second)
			if code := p.Wait(t, 30*time.Second); code != 0 {
				t.Errorf("exit code %d; want 0\n%s", code, p.Log)
			}
			t.Logf("exit 0 %v after the first SIGTERM (--shutdown-delay 10m)", time.Since(sent).Round(time.Millisecond))
			if !strings.Contains(p.Log.String(), "shutdown delay cut short") {
				t.Errorf("the log does not say the delay was cut short:\n%s", p.Log)
			}
		})
	}
}

// scrape GETs /metrics from addr and returns the body.
func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
	}
	return string(body)
}

// --metrics-listen serves GET /metrics and nothing else; the admin listener keeps its routes.
func TestServeMetricsListen(t *testing.T) {
	addr := testkit.FreePort(t)
	p := opsProcess(t, "--metrics-listen", addr)
	if code, _ := p.Post(t, "/assignment_callback", "", callback(1, `{"do":"accept"}`)); code != 200 {
		t.Fatalf("callback = %d", code)
	}
	body := scrape(t, "http://"+addr+"/metrics")
	for _, want := range []string{`reservist_callbacks_total{instruction="accept",outcome="answered",rule=`, "reservist_build_info{", "reservist_rules_last_reload_successful 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("--metrics-listen /metrics lacks %s", want)
		}
	}
	for _, tc := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{"GET", "/rules", 404, ""},
		{"POST", "/-/reload", 404, ""},
		{"GET", "/", 404, ""},
		{"GET", "/healthz", 404, ""},
		{"POST", "/metrics", 405, "GET"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s on --metrics-listen = %d, Allow %q; want %d, Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.want, tc.allow)
		}
	}
	if code, _ := get(t, p.Admin+"/rules"); code != 200 {
		t.Errorf("GET /rules on the admin listener = %d; want 200", code)
	}
}

// reservist_build_info says what the binary itself records: the version `reservist version`
// starts with, the VCS revision (or unknown, built without VCS stamping) and the Go release.
func TestServeBuildInfo(t *testing.T) {
	p := opsProcess(t)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(scrape(t, p.Admin+"/metrics")))
	if err != nil {
		t.Fatal(err)
	}
	f := families["reservist_build_info"]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("reservist_build_info = %v; want one series", f)
	}
	got := map[string]string{}
	for _, l := range f.Metric[0].Label {
		got[l.GetName()] = l.GetValue()
	}
	if v := f.Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("reservist_build_info = %v; want 1", v)
	}

	// What the binary holds, read from the file.
	info, err := buildinfo.ReadFile(p.Cmd.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"version": "devel", "revision": "unknown", "goversion": info.GoVersion}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		want["version"] = v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			want["revision"] = s.Value
		}
	}
	if info.GoVersion != runtime.Version() {
		t.Errorf("the binary was built by %s; this test by %s", info.GoVersion, runtime.Version())
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("reservist_build_info{%s=%q}; want %q (the binary's build info)", k, got[k], v)
		}
	}
	out, err := exec.Command(p.Cmd.Path, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fields := strings.Fields(string(out)); len(fields) < 2 || fields[1] != got["version"] {
		t.Errorf("reservist version = %q; want it to start with reservist %s", out, got["version"])
	}
}

// promtool's linter finds nothing to say about the real binary's /metrics, once a callback
// of each outcome it can cause has been counted. Without promtool the test is skipped, except
// in CI (CI=true), where it fails: .ci/run installs it.
func TestServeMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (Debian: apt-get install prometheus); CI must lint the metrics")
		}
		t.Skip("promtool is not installed (Debian: apt-get install prometheus)")
	}
	addr := testkit.FreePort(t)
	p := opsProcess(t, "--metrics-listen", addr)
	p.Post(t, "/assignment_callback", "", callback(1, `{"do":"accept"}`))
	p.Post(t, "/assignment_callback", "", callback(2, `not json`))
	req, _ := http.NewRequest("POST", p.URL+"/assignment_callback", strings.NewReader("%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	do(t, req)
	body := scrape(t, "http://"+addr+"/metrics")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// --log-level warn leaves out the decision log (at info) and the other info lines, and keeps
// the warnings; info, the default, has a decision line per callback.
func TestServeLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level     string
		decisions int
	}{
		{"info", 1},
		{"debug", 1},
		{"warn", 0},
		{"error", 0},
	} {
		t.Run(tc.level, func(t *testing.T) {
			s := startServe(t, "", nil, "--log-level", tc.level)
			if status, _ := s.post(t, "/assignment_callback", callback(1, `{"do":"accept"}`)); status != 200 {
				t.Fatalf("callback = %d", status)
			}
			if err := s.stop(t); err != nil {
				t.Fatal(err)
			}
			if got := len(s.log.records("callback")); got != tc.decisions {
				t.Errorf("--log-level %s: %d decision lines; want %d\n%s", tc.level, got, tc.decisions, s.log)
			}
			// Without TWILIO_AUTH_TOKEN on loopback, serve warns at start.
			wantWarning := tc.level != "error"
			if got := strings.Contains(s.log.String(), `"level":"WARN","msg":"TWILIO_AUTH_TOKEN is not set`); got != wantWarning {
				t.Errorf("--log-level %s: the start-up warning logged %v; want %v\n%s", tc.level, got, wantWarning, s.log)
			}
			if got := len(s.log.records("listening")) > 0; got != (tc.decisions > 0) {
				t.Errorf("--log-level %s: the listening line (info) logged %v\n%s", tc.level, got, s.log)
			}
		})
	}
}
