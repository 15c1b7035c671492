package deploy_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite components/sidecar/prometheusrule.yaml from prometheus/alerts.yaml")

const (
	alertsFile         = "prometheus/alerts.yaml"
	alertsTestFile     = "prometheus/alerts_test.yaml"
	prometheusRuleFile = "components/sidecar/prometheusrule.yaml"
)

// renderPrometheusRule wraps the plain rules file's groups in a PrometheusRule, as they are.
func renderPrometheusRule(t *testing.T) []byte {
	t.Helper()
	src := readFile(t, alertsFile)
	lines := strings.Split(string(src), "\n")
	for len(lines) > 0 && strings.HasPrefix(lines[0], "#") {
		lines = lines[1:] // the file's own header is about the file
	}
	var b bytes.Buffer
	b.WriteString(`# Generated from ../../prometheus/alerts.yaml by
#   go test ./deploy -run TestPrometheusRule -update
# Edit that file (and its tests, alerts_test.yaml), not this one. Your Prometheus may only
# pick up PrometheusRules with a label of its choosing (ruleSelector): add it in your
# kustomization (labels:), not here.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: reservist
  labels:
    app.kubernetes.io/name: reservist
spec:
`)
	for _, l := range lines {
		if l != "" {
			b.WriteString("  " + l)
		}
		b.WriteString("\n")
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// alertGroups decodes the plain rules file strictly into the Prometheus Operator's types.
func alertGroups(t *testing.T) []monitoringv1.RuleGroup {
	t.Helper()
	var f struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := strict(readFile(t, alertsFile), &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return f.Groups
}

// TestPrometheusRule: the PrometheusRule the overlays apply carries exactly the groups of the
// plain rules file that promtool checks and tests.
func TestPrometheusRule(t *testing.T) {
	want := append(renderPrometheusRule(t), '\n')
	if *update {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, prometheusRuleFile); !bytes.Equal(got, want) {
		t.Errorf("%s is not generated from %s; run: go test ./deploy -run TestPrometheusRule -update", prometheusRuleFile, alertsFile)
	}
	groups := alertGroups(t)
	for _, dir := range workloadDirs {
		b := kustomize(t, dir)
		if len(b.prometheusRules) != 1 {
			t.Fatalf("%s: %d PrometheusRules; want 1", dir, len(b.prometheusRules))
		}
		if got := b.prometheusRules[0].Spec.Groups; !reflect.DeepEqual(got, groups) {
			t.Errorf("%s: the PrometheusRule's groups differ from %s", dir, alertsFile)
		}
	}
}

// The alerts the README and the issue ask for, by name.
var wantAlerts = []string{
	"ReservistRulesReloadFailing", "ReservistRulesStale",
	"ReservistOutboxBacklog", "ReservistOutboxOldestActionAge",
	"ReservistRESTFinalErrors", "ReservistRESTAbandoned",
	"ReservistRuleTimeoutRatio", "ReservistSignatureFailures",
	"ReservistScrapeFailing", "ReservistAbsent", "ReservistNotReady",
}

// TestAlertRules: every alert has a severity, a summary and a description, every one the
// deployment promises is there, and each has a promtool unit test.
func TestAlertRules(t *testing.T) {
	var names []string
	for _, g := range alertGroups(t) {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			names = append(names, r.Alert)
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q; want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a summary and a description", r.Alert)
			}
			if expr := r.Expr.String(); strings.Contains(expr, "job=") && !strings.Contains(expr, `job="`+alertJob+`"`) {
				t.Errorf("%s: matches a job other than the PodMonitor's %q: %s", r.Alert, alertJob, expr)
			}
		}
	}
	for _, w := range wantAlerts {
		if !slices.Contains(names, w) {
			t.Errorf("no alert %s in %s", w, alertsFile)
		}
	}
	var tests struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			AlertRuleTests []struct {
				Alertname string `json:"alertname"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, alertsTestFile), &tests); err != nil {
		t.Fatalf("%s: %v", alertsTestFile, err)
	}
	if !slices.Equal(tests.RuleFiles, []string{"alerts.yaml"}) {
		t.Errorf("%s tests %v; want [alerts.yaml]", alertsTestFile, tests.RuleFiles)
	}
	tested := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTests {
			tested[a.Alertname] = true
		}
	}
	for _, n := range names {
		if !tested[n] {
			t.Errorf("alert %s has no test in %s", n, alertsTestFile)
		}
	}
}

// TestPromtool runs promtool's checks and the alerts' unit tests. Without promtool the test
// is skipped, except in CI (CI=true), where it fails: .ci/run installs it.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (Debian: apt-get install prometheus); CI must run the alert tests")
		}
		t.Skip("promtool is not installed (Debian: apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"test", "rules", "alerts_test.yaml"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
}
