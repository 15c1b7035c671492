package main

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/config"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

// waitFiles polls dir until it holds n .form files or ten seconds pass: capture writes
// after the answer, from its own goroutine.
func waitFiles(t *testing.T, dir string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.form"))
		if len(files) >= n {
			return files
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d .form files in %s after 10s; want %d", len(files), dir, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --capture-dir writes each authentic callback as a case that reservist test reads back
// (redacted), and counts it; refused callbacks are not captured.
func TestServeCapture(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captured")
	fake := map[string]string{"TWILIO_ACCOUNT_SID": taskroutertest.DefaultAccountSid, "TWILIO_AUTH_TOKEN": "capturetesttoken"}
	s := startServe(t, "", fake, "--capture-dir", dir, "--capture-redact", "phone,contact_uri")

	sent := callback(1, `{"do":"accept","customer":{"phone":"+15551230000"}}`)
	if status, got := s.post(t, "/assignment_callback", sent); status != 200 || got != `{"instruction":"accept"}` {
		t.Fatalf("callback = %d %s", status, got)
	}
	s.token = "wrong"
	if status, _ := s.post(t, "/assignment_callback", callback(2, `{"do":"accept"}`)); status != 403 {
		t.Fatalf("badly signed callback = %d; want 403", status)
	}

	files := waitFiles(t, dir, 1)
	c, err := cases.LoadFile(files[0])
	if err != nil {
		t.Fatalf("the captured file is not a case: %v", err)
	}
	want := url.Values{}
	for k, v := range sent {
		want[k] = v
	}
	want.Set("TaskAttributes", `{"customer":{"phone":"[redacted]"},"do":"accept"}`)
	want.Set("WorkerAttributes", `{"contact_uri":"[redacted]"}`)
	if got := c.Params.Encode(); got != want.Encode() {
		t.Errorf("captured case = %s\nwant %s", got, want.Encode())
	}
	if !strings.HasSuffix(files[0], sent.Get("ReservationSid")+".form") {
		t.Errorf("captured file %s is not named after its ReservationSid", files[0])
	}

	_, metrics := get(t, s.admin+"/metrics")
	if !strings.Contains(metrics, "reservist_capture_written_total 1\n") {
		t.Errorf("metrics lack reservist_capture_written_total 1:\n%s", grepLines(metrics, "capture"))
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("serve = %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.form")); len(files) != 1 {
		t.Errorf("%d files after shutdown; want 1: the refused callback is not captured", len(files))
	}
	if strings.Contains(s.log.String(), "15551230000") || strings.Contains(s.log.String(), "client:alice") {
		t.Errorf("an attribute value reached the log")
	}
}

// A capture directory that cannot be written never fails a callback: it is logged and
// counted.
func TestServeCaptureUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "", nil, "--capture-dir", filepath.Join(file, "captured"))
	for i := range 3 {
		if status, got := s.post(t, "/assignment_callback", callback(uint64(i), `{"do":"accept"}`)); status != 200 || got != `{"instruction":"accept"}` {
			t.Errorf("callback with an unwritable capture dir = %d %s; want 200 accept", status, got)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, metrics := get(t, s.admin+"/metrics")
		if strings.Contains(metrics, `reservist_capture_dropped_total{reason="error"} 3`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics after 10s:\n%s\nwant 3 dropped for error", grepLines(metrics, "capture"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(s.log.String(), "capture directory cannot be created") {
		t.Errorf("log does not say the capture directory cannot be created:\n%s", s.log)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The playground is on the admin listener; recent callbacks are kept only while that is
// loopback.
func TestServePlayground(t *testing.T) {
	s := startServe(t, "", nil)
	s.post(t, "/assignment_callback", callback(1, `{"do":"accept"}`))
	status, page := get(t, s.admin+"/")
	if status != 200 || !strings.Contains(page, "reservist playground") || !strings.Contains(page, `<tr data-rule="accept-it">`) {
		t.Errorf("GET admin / = %d; want the playground page", status)
	}
	if !strings.Contains(page, taskroutertest.NewSid("WR", 1)) {
		t.Errorf("the page does not list the callback received")
	}
	if status, _ := get(t, s.admin+"/metrics"); status != 200 {
		t.Errorf("GET /metrics = %d behind the playground; want 200", status)
	}
	if status, _ := get(t, s.admin+"/rules"); status != 200 {
		t.Errorf("GET /rules = %d behind the playground; want 200", status)
	}

	for _, tc := range []struct {
		admin  string
		recent bool
	}{{"127.0.0.1:9090", true}, {"localhost:9090", true}, {"[::1]:9090", true}, {"0.0.0.0:9090", false}, {":9090", false}, {"", false}} {
		wb, err := newWorkbench(&config.Serve{AdminListen: tc.admin}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if got := wb.recent != nil; got != tc.recent {
			t.Errorf("--admin-listen %q keeps recent callbacks: %v; want %v", tc.admin, got, tc.recent)
		}
		if !tc.recent && tc.admin != "" && !strings.Contains(wb.recentOff, "loopback") {
			t.Errorf("--admin-listen %q: no note why recent callbacks are not kept", tc.admin)
		}
		if tc.admin == "" && wb.observe() != nil {
			t.Errorf("without an admin listener or capture, callbacks are still observed")
		}
	}
}

// The playground's golden cases are --reload-cases, or without them the cases/ beside the
// rules file, where reservist test looks.
func TestServePlaygroundCases(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(testkit.Rules(t, "every-instruction")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "cases"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cases", "beside.yaml"), []byte("TaskAttributes: {}\nWorkerAttributes: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	listed := func(s *served) (gate bool, names []string) {
		t.Helper()
		_, body := get(t, s.admin+"/cases")
		var list struct {
			Gate  bool
			Cases []struct{ Name string }
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("/cases: %v: %s", err, body)
		}
		for _, c := range list.Cases {
			names = append(names, c.Name)
		}
		return list.Gate, names
	}
	if gate, names := listed(startServe(t, "", nil, "--rules", rulesFile)); gate || strings.Join(names, ",") != "beside" {
		t.Errorf("without --reload-cases the playground lists %v (gate %v); want the case beside the rules, not a gate", names, gate)
	}
	// A gate's cases must pass: their golden files are written from what the rules decide.
	gated := filepath.Join(t.TempDir(), "gated")
	os.Mkdir(gated, 0o755)
	os.WriteFile(filepath.Join(gated, "one.yaml"), []byte("TaskAttributes: {}\nWorkerAttributes: {}\n"), 0o644)
	set, err := rules.Parse(rulesFile, []byte(testkit.Rules(t, "every-instruction")))
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := cases.Load(gated)
	if _, err := cases.Run(engine.New(set), cs, nil).Update(false); err != nil {
		t.Fatal(err)
	}
	if gate, names := listed(startServe(t, "", nil, "--rules", rulesFile, "--reload-cases", gated)); !gate || strings.Join(names, ",") != "one" {
		t.Errorf("with --reload-cases the playground lists %v (gate %v); want the --reload-cases ones, a gate", names, gate)
	}
}
