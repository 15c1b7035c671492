package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/reservist/reservist/internal/testkit"
	corev1 "k8s.io/api/core/v1"
)

// The manifests are checked against the real binary, built from this module as the
// Dockerfile builds it: its serve flags and defaults, the configuration it accepts, the
// paths it answers and the metrics it exposes.

// pendingFlags are serve flags the manifests set that the serve command in this tree does
// not have yet (when they are being added beside other work). Their variables are passed
// over when the binary runs; the test fails once one of them exists, so that it is dropped
// here and checked like the others. Every flag the manifests set exists now.
var pendingFlags = map[string]bool{}

// pendingMetrics are metric names the alert rules use that this tree's binary does not
// expose yet, or exposes only after events this test cannot cause (an Event callback).
var pendingMetrics = map[string]string{}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// reservistBinary builds the module's binary once, static as in the Dockerfile.
func reservistBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "reservist-deploy-test")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "reservist")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", binPath, ".")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serveHelp is what `reservist serve -h` says: each flag's variable and default.
type serveHelp struct {
	flagOf   map[string]string // RESERVIST_ variable → flag name
	defaults map[string]string // flag name → default, unquoted
}

var (
	helpOnce sync.Once
	help     serveHelp
	helpErr  error
)

func serveFlags(t *testing.T) serveHelp {
	t.Helper()
	bin := reservistBinary(t)
	helpOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "serve", "-h").CombinedOutput()
		if err != nil {
			helpErr = fmt.Errorf("reservist serve -h: %v\n%s", err, out)
			return
		}
		help = serveHelp{map[string]string{}, map[string]string{}}
		// Each flag is a line "  --listen address" and its usage below it, indented and
		// wrapped, ending "(env RESERVIST_LISTEN) (default "127.0.0.1:8080")".
		flagLine := regexp.MustCompile(`^  --?([a-z][a-z0-9-]*)\b`)
		tail := regexp.MustCompile(`\(env (RESERVIST_[A-Z0-9_]+)\)(?: \(default (.*)\))?$`)
		var name, usage string
		flush := func() {
			if m := tail.FindStringSubmatch(usage); name != "" && m != nil {
				help.flagOf[m[1]] = name
				if d, err := strconv.Unquote(m[2]); err == nil {
					help.defaults[name] = d
				} else {
					help.defaults[name] = m[2]
				}
			}
			name, usage = "", ""
		}
		for _, line := range strings.Split(string(out), "\n") {
			if m := flagLine.FindStringSubmatch(line); m != nil {
				flush()
				name = m[1]
			} else if name != "" && strings.HasPrefix(line, "        ") {
				usage = strings.TrimSpace(usage + " " + strings.TrimSpace(line))
			} else {
				flush()
			}
		}
		flush()
		if help.flagOf["RESERVIST_LISTEN"] != "listen" || help.flagOf["RESERVIST_RULES"] != "rules" {
			helpErr = fmt.Errorf("could not read the flags from reservist serve -h:\n%s", out)
		}
	})
	if helpErr != nil {
		t.Fatal(helpErr)
	}
	return help
}

// flagOf maps a RESERVIST_ variable to its flag's name, as the serve command does.
func flagOf(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "RESERVIST_")), "_", "-")
}

// TestNamesOnlyServeFlags: every RESERVIST_ variable named anywhere under deploy/ (manifests,
// comments, the Dockerfile, the README) is a serve flag's.
func TestNamesOnlyServeFlags(t *testing.T) {
	h := serveFlags(t)
	for name := range pendingFlags {
		if _, ok := h.defaults[name]; ok {
			t.Errorf("--%s is a serve flag now: remove it from pendingFlags", name)
		}
	}
	re := regexp.MustCompile(`RESERVIST_[A-Z0-9_]+`)
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, name := range slices.Compact(slices.Sorted(slices.Values(re.FindAllString(string(data), -1)))) {
			switch {
			case h.flagOf[name] != "":
			case pendingFlags[flagOf(name)]:
				t.Logf("%s names %s: --%s is not a serve flag in this tree yet", p, name, flagOf(name))
			default:
				t.Errorf("%s names %s, but serve has no --%s", p, name, flagOf(name))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDockerfileDefaults: the image's ENV names serve flags; it listens on the binary's
// default ports, only on every interface, and exposes the callback port; and, listening on
// every interface, it refuses to start without TWILIO_AUTH_TOKEN (exit 2, naming it), as its
// comment says.
func TestDockerfileDefaults(t *testing.T) {
	h := serveFlags(t)
	d := readDockerfile(t)
	for name := range d.env {
		if strings.HasPrefix(name, "RESERVIST_") && h.flagOf[name] == "" && !pendingFlags[flagOf(name)] {
			t.Errorf("Dockerfile: ENV %s names no serve flag", name)
		}
	}
	for _, flag := range []string{"listen", "admin-listen"} {
		env := "RESERVIST_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
		v, ok := d.env[env]
		if !ok {
			continue
		}
		_, got := addrPort(t, env, v)
		_, want := addrPort(t, "--"+flag+" default", h.defaults[flag])
		if got != want {
			t.Errorf("Dockerfile: %s port %d; the binary's default is %d", env, got, want)
		}
	}
	_, listen := addrPort(t, "RESERVIST_LISTEN", d.env["RESERVIST_LISTEN"])
	if !slices.Contains(d.expose, listen) {
		t.Errorf("Dockerfile: EXPOSE %v lacks the callback port %d", d.expose, listen)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, reservistBinary(t), dockerEntrypoint(t)[1:]...)
	cmd.Dir = t.TempDir()
	cmd.Env = nil
	for k, v := range d.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("the image's configuration without TWILIO_AUTH_TOKEN: %v; want exit 2\n%s", err, out)
	} else if !strings.Contains(string(out), "TWILIO_AUTH_TOKEN") {
		t.Errorf("the refusal does not name TWILIO_AUTH_TOKEN:\n%s", out)
	}
}

// standIn is a value of the right shape for a variable the manifests take from a Secret.
func standIn(name string) string {
	switch name {
	case "TWILIO_ACCOUNT_SID":
		return "AC00000000000000000000000000000000"
	case "TWILIO_AUTH_TOKEN":
		return "0123456789abcdef0123456789abcdef"
	}
	return "stand-in"
}

// sidecarEnv is the environment the kubelet would give the sidecar, Secrets replaced by
// stand-ins, resource fields computed, pending flags' variables left out.
func sidecarEnv(t *testing.T, s sidecar) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range s.c.Env {
		if strings.HasPrefix(e.Name, "RESERVIST_") && pendingFlags[flagOf(e.Name)] {
			t.Logf("%s left out: --%s is not a serve flag in this tree yet", e.Name, flagOf(e.Name))
			continue
		}
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = standIn(e.Name)
		case e.ValueFrom.ResourceFieldRef != nil:
			ref := e.ValueFrom.ResourceFieldRef
			q, ok := s.c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))]
			if !ok {
				t.Fatalf("%s: %s of the container is not set", e.Name, ref.Resource)
			}
			div := int64(1)
			if !ref.Divisor.IsZero() {
				div = ref.Divisor.Value()
			}
			env[e.Name] = strconv.FormatInt(q.Value()/div, 10)
		default:
			t.Fatalf("%s: a source this test does not know: %+v", e.Name, e.ValueFrom)
		}
	}
	return env
}

// TestSidecarServes runs the binary with the embedded overlay's sidecar environment (only the
// addresses and paths moved to a temporary directory and free loopback ports) and checks that
// it starts on the ConfigMap's rules, answers the probe paths with 200, checks signatures
// against RESERVIST_PUBLIC_URL, carries a REST decision out through --twilio-base-url, exposes
// every series the alert rules match, and stops within the pod's grace period on SIGTERM.
func TestSidecarServes(t *testing.T) {
	b, s := theSidecar(t, "overlays/embedded")
	env := sidecarEnv(t, s)

	// A stand-in for TaskRouter's REST API that refuses every action with a 404, which
	// reservist counts as a final error.
	var restCalls sync.WaitGroup
	restCalls.Add(1)
	var once sync.Once
	twilio := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer once.Do(restCalls.Done)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"code":20404,"message":"The requested resource was not found","status":404}`)
	}))
	defer twilio.Close()

	dir := t.TempDir()
	rulesPath := filepath.Join(dir, filepath.FromSlash(env["RESERVIST_RULES"]))
	if err := os.MkdirAll(filepath.Dir(rulesPath), 0o755); err != nil {
		t.Fatal(err)
	}
	var rules string
	for _, cm := range b.configMaps {
		if v, ok := cm.Data[path.Base(env["RESERVIST_RULES"])]; ok {
			rules = v
		}
	}
	if err := os.WriteFile(rulesPath, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--rules", rulesPath, "--state-dir", filepath.Join(dir, "state"),
		"--twilio-base-url", twilio.URL,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, reservistBinary(t), args...)
	cmd.Dir = dir
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the test reads only until it starts; drop the rest
			}
		}
	}()
	var listening struct{ Msg, Callback, Admin, Metrics string }
	var logged []string
	for listening.Msg != "listening" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("reservist exited before listening: %v\n%s", cmd.Wait(), strings.Join(logged, "\n"))
			}
			logged = append(logged, l)
			json.Unmarshal([]byte(l), &listening) // a line that is not JSON is only shown

		case <-time.After(30 * time.Second):
			t.Fatalf("reservist did not say it is listening within 30s:\n%s", strings.Join(logged, "\n"))
		}
	}
	base := "http://" + listening.Callback
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(body)
	}

	// The probes' paths, as the kubelet asks them.
	for _, p := range []*corev1.Probe{s.c.LivenessProbe, s.c.ReadinessProbe} {
		if code, body := get(base + p.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("GET %s = %d %s; want 200", p.HTTPGet.Path, code, body)
		}
	}

	// A callback without a signature is refused; one signed for the public URL is decided.
	callbackPath := "/assignment_callback"
	if v, ok := env["RESERVIST_CALLBACK_PATH"]; ok {
		callbackPath = strings.Split(v, ",")[0]
	}
	form := url.Values{
		"AccountSid":       {standIn("TWILIO_ACCOUNT_SID")},
		"WorkspaceSid":     {"WS0123456789abcdef0123456789abcdef"},
		"WorkflowSid":      {"WW0123456789abcdef0123456789abcdef"},
		"TaskQueueSid":     {"WQ0123456789abcdef0123456789abcdef"},
		"TaskSid":          {"WT00000000000000000000000000000007"},
		"ReservationSid":   {"WR00000000000000000000000000000007"},
		"WorkerSid":        {"WK00000000000000000000000000000007"},
		"TaskAge":          {"2"},
		"TaskPriority":     {"10"},
		"TaskAttributes":   {`{"type":"callback","number":"+15551110010"}`}, // scheduled-callback: a call by REST
		"WorkerAttributes": {`{"contact_uri":"+15551230000"}`},
		"Timestamp":        {strconv.FormatInt(time.Now().Unix(), 10)},
	}
	post := func(sig string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+callbackPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			req.Header.Set("X-Twilio-Signature", sig)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(body)
	}
	if code, body := post(""); code != http.StatusForbidden {
		t.Errorf("an unsigned callback: %d %s; want 403", code, body)
	}
	sig := testkit.Sign(env["TWILIO_AUTH_TOKEN"], strings.TrimSuffix(env["RESERVIST_PUBLIC_URL"], "/")+callbackPath, form)
	if code, body := post(sig); code != http.StatusOK || strings.TrimSpace(body) != "{}" {
		t.Errorf("a callback signed for RESERVIST_PUBLIC_URL: %d %s; want 200 {} (the decision goes by REST)", code, body)
	}
	rest := make(chan struct{})
	go func() { restCalls.Wait(); close(rest) }()
	select {
	case <-rest:
	case <-time.After(30 * time.Second):
		t.Fatal("no REST call reached --twilio-base-url within 30s")
	}

	// TaskRouter's Event callback for that reservation, at the events path the manifests
	// leave to its default or set: answered 204, and counted under the rule that decided it.
	eventsPath := "/taskrouter/events"
	if v, ok := env["RESERVIST_EVENTS_PATH"]; ok {
		eventsPath = v
	}
	event := url.Values{
		"EventType":        {"reservation.timeout"},
		"AccountSid":       form["AccountSid"],
		"WorkspaceSid":     form["WorkspaceSid"],
		"ResourceType":     {"Reservation"},
		"ResourceSid":      form["ReservationSid"],
		"ReservationSid":   form["ReservationSid"],
		"TaskSid":          form["TaskSid"],
		"WorkerSid":        form["WorkerSid"],
		"TaskAttributes":   form["TaskAttributes"],
		"EventDescription": {"Reservation timed out"},
		"Timestamp":        {strconv.FormatInt(time.Now().Unix(), 10)},
	}
	req, _ := http.NewRequest(http.MethodPost, base+eventsPath, strings.NewReader(event.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", testkit.Sign(env["TWILIO_AUTH_TOKEN"], strings.TrimSuffix(env["RESERVIST_PUBLIC_URL"], "/")+eventsPath, event))
	if resp, err := client.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("an Event callback signed for RESERVIST_PUBLIC_URL at %s: %d; want 204", eventsPath, resp.StatusCode)
		}
	}

	// Every series the alert rules select, with the label values they match, once the
	// final error is counted.
	var families map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get("http://" + listening.Metrics + "/metrics") // as the PodMonitor scrapes
		if code != http.StatusOK {
			t.Fatalf("GET /metrics = %d", code)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		if families, err = p.TextToMetricFamilies(strings.NewReader(body)); err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		missing := missingSeries(t, families)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("/metrics lacks series the alert rules select: %s", strings.Join(missing, "; "))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// SIGTERM: at once the readiness probe fails, so that the endpoint is removed, while
	// callbacks are still answered for RESERVIST_SHUTDOWN_DELAY; then the process drains and
	// exits 0 within the pod's grace period, and not before the delay is over.
	delay, err := time.ParseDuration(env["RESERVIST_SHUTDOWN_DELAY"])
	if err != nil {
		t.Fatalf("RESERVIST_SHUTDOWN_DELAY %q: %v", env["RESERVIST_SHUTDOWN_DELAY"], err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	readyPath := s.c.ReadinessProbe.HTTPGet.Path
	for {
		code, body := get(base + readyPath)
		if code == http.StatusServiceUnavailable && strings.Contains(body, `"shutting_down":true`) {
			break
		}
		if time.Since(start) > delay {
			t.Fatalf("GET %s = %d %s %s after SIGTERM; want 503 with shutting_down during the shutdown delay", readyPath, code, body, time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	unready := time.Since(start)
	form.Set("ReservationSid", "WR00000000000000000000000000000008")
	sig = testkit.Sign(env["TWILIO_AUTH_TOKEN"], strings.TrimSuffix(env["RESERVIST_PUBLIC_URL"], "/")+callbackPath, form)
	if code, body := post(sig); code != http.StatusOK {
		t.Errorf("a callback during the shutdown delay: %d %s; want 200", code, body)
	}
	grace := time.Duration(*s.template.Spec.TerminationGracePeriodSeconds) * time.Second
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("after SIGTERM: %v; want exit 0", err)
		}
		stopped := time.Since(start)
		if stopped < delay {
			t.Errorf("stopped %s after SIGTERM; want no sooner than RESERVIST_SHUTDOWN_DELAY %s", stopped, delay)
		}
		t.Logf("SIGTERM → %s 503 in %s; stopped after %s (shutdown delay %s, grace period %s)",
			readyPath, unready.Round(time.Millisecond), stopped.Round(time.Millisecond), delay, grace)
	case <-time.After(grace):
		t.Errorf("still running %s after SIGTERM: the kubelet would kill it", grace)
	}
}

// selectorRE finds the metric selectors in an alert expression: a reservist_ name and its
// label matchers, if any.
var (
	selectorRE = regexp.MustCompile(`\b(reservist_[a-z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"`)
)

// missingSeries lists the alert rules' selectors that no exposed series satisfies. A
// selector whose label value the test cannot produce (a REST call abandoned at its
// deadline) is satisfied by a series with that label.
func missingSeries(t *testing.T, families map[string]*dto.MetricFamily) []string {
	t.Helper()
	cannotProduce := map[string]bool{`result="abandoned"`: true}
	var missing []string
	notChecked := map[string]bool{}
	for _, g := range alertGroups(t) {
		for _, r := range g.Rules {
			for _, m := range selectorRE.FindAllStringSubmatch(r.Expr.String(), -1) {
				name, matchers := m[1], m[2]
				if why, ok := pendingMetrics[name]; ok {
					if _, exposed := families[name]; exposed {
						t.Errorf("%s is exposed now: remove it from pendingMetrics", name)
					} else if !notChecked[name] {
						notChecked[name] = true
						t.Logf("%s: not checked: %s", name, why)
					}
					continue
				}
				f, ok := families[name]
				if !ok {
					missing = append(missing, r.Alert+": "+name)
					continue
				}
				found := false
				for _, metric := range f.Metric {
					labels := map[string]string{}
					for _, l := range metric.Label {
						labels[l.GetName()] = l.GetValue()
					}
					ok := true
					for _, mm := range matcherRE.FindAllStringSubmatch(matchers, -1) {
						v, has := labels[mm[1]]
						switch {
						case mm[2] != "=":
							ok = ok && has
						case cannotProduce[mm[1]+`="`+mm[3]+`"`]:
							ok = ok && has
						default:
							ok = ok && v == mm[3]
						}
					}
					found = found || ok
				}
				if !found {
					missing = append(missing, r.Alert+": "+name+matchers)
				}
			}
		}
	}
	return missing
}
