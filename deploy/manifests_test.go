package deploy_test

import (
	"bytes"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	sidecarName = "reservist"
	// The example rules, which the base's rules.yaml is a copy of (kustomize reads no file
	// from outside the kustomization's root).
	exampleRules = "../testdata/example/rules.yaml"
	// How long reservist may take to stop once --shutdown-delay is over: the callbacks in
	// flight (at most --response-budget) and the REST calls in flight (up to 5s).
	restDrain = 5 * time.Second
	// defaultResponseBudget is --response-budget's default.
	defaultResponseBudget = 3 * time.Second
	// drainMargin is what terminationGracePeriodSeconds must leave beyond all that.
	drainMargin = 5 * time.Second
)

// sidecar is the reservist container of a pod template, and the pod it is in.
type sidecar struct {
	podTemplate
	c   *corev1.Container
	env map[string]corev1.EnvVar
}

// sidecars finds the reservist container in each workload of an overlay; it fails unless
// there is exactly one workload with one.
func sidecars(t *testing.T, b *built) []sidecar {
	t.Helper()
	var found []sidecar
	for _, pt := range b.podTemplates() {
		for i := range pt.template.Spec.Containers {
			c := &pt.template.Spec.Containers[i]
			if c.Name != sidecarName {
				continue
			}
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				if _, dup := env[e.Name]; dup {
					t.Errorf("%s: %s: env %s is set twice", b.dir, pt.owner, e.Name)
				}
				env[e.Name] = e
			}
			found = append(found, sidecar{pt, c, env})
		}
	}
	return found
}

func theSidecar(t *testing.T, dir string) (*built, sidecar) {
	t.Helper()
	b := kustomize(t, dir)
	s := sidecars(t, b)
	if len(s) != 1 {
		t.Fatalf("%s: %d workloads with a %s container; want 1", dir, len(s), sidecarName)
	}
	return b, s[0]
}

// value is a plain env value; the test fails if it is missing or comes from elsewhere.
func (s sidecar) value(t *testing.T, name string) string {
	t.Helper()
	e, ok := s.env[name]
	if !ok {
		t.Fatalf("%s: %s is not set", s.owner, name)
	}
	if e.ValueFrom != nil {
		t.Fatalf("%s: %s comes from %v; want a plain value", s.owner, name, e.ValueFrom)
	}
	return e.Value
}

func (s sidecar) duration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	if _, ok := s.env[name]; !ok {
		return def
	}
	d, err := time.ParseDuration(s.value(t, name))
	if err != nil {
		t.Fatalf("%s: %s: %v", s.owner, name, err)
	}
	return d
}

func addrPort(t *testing.T, what, addr string) (host string, port int32) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	return h, int32(n)
}

// containerPort resolves a port given by number or by name against a container's ports.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func selects(t *testing.T, what string, sel *metav1.LabelSelector, pt podTemplate) bool {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		t.Errorf("%s has an empty selector: it would select every pod", what)
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("%s: selector: %v", what, err)
		return false
	}
	return s.Matches(labels.Set(pt.template.Labels))
}

// TestKustomizationsBuild builds every kustomization under deploy/ and decodes its output
// strictly into the API types (kustomizeOn does both); none of them may carry a Secret.
func TestKustomizationsBuild(t *testing.T) {
	dirs := kustomizationDirs(t)
	for _, want := range append(slices.Clone(applied), "base", "components/sidecar") {
		if _, ok := dirs[want]; !ok {
			t.Errorf("deploy/%s has no kustomization.yaml", want)
		}
	}
	for dir, component := range dirs {
		if component {
			continue // built as a part of the base
		}
		b := kustomize(t, dir)
		if len(b.objects) == 0 {
			t.Errorf("%s builds to nothing", dir)
		}
		for _, o := range b.objects {
			if o.kind == "Secret" {
				t.Errorf("%s contains Secret %s: applying it would overwrite the real one; reference it, and keep the example in examples/", dir, o.name)
			}
		}
	}
}

// TestExampleSecrets: the Secrets in examples/ decode strictly, and have every key that an
// applied kustomization's secretKeyRef names (so that following the example works).
func TestExampleSecrets(t *testing.T) {
	keys := map[string]map[string]bool{}
	for _, doc := range readDocs(t, "examples/secret.example.yaml") {
		var s corev1.Secret
		if err := strict(doc, &s); err != nil {
			t.Fatalf("examples/secret.example.yaml: %v", err)
		}
		if s.Kind != "Secret" || s.APIVersion != "v1" {
			t.Errorf("examples/secret.example.yaml: %s %s; want v1 Secret", s.APIVersion, s.Kind)
		}
		keys[s.Name] = map[string]bool{}
		for k := range s.StringData {
			keys[s.Name][k] = true
		}
		for k := range s.Data {
			keys[s.Name][k] = true
		}
		// The comment above each example gives the command that creates it.
		if !bytes.Contains(readFile(t, "examples/secret.example.yaml"), []byte("kubectl create secret generic "+s.Name+" ")) {
			t.Errorf("examples/secret.example.yaml: no `kubectl create secret generic %s` command for it", s.Name)
		}
	}
	for _, dir := range applied {
		for _, pt := range kustomize(t, dir).podTemplates() {
			for _, c := range allContainers(pt.template) {
				for _, e := range c.Env {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						continue
					}
					ref := e.ValueFrom.SecretKeyRef
					if !keys[ref.Name][ref.Key] {
						t.Errorf("%s: %s: env %s reads key %s of Secret %s, which examples/secret.example.yaml does not show", dir, pt.owner, e.Name, ref.Key, ref.Name)
					}
				}
			}
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func allContainers(pt *corev1.PodTemplateSpec) []*corev1.Container {
	var cs []*corev1.Container
	for i := range pt.Spec.InitContainers {
		cs = append(cs, &pt.Spec.InitContainers[i])
	}
	for i := range pt.Spec.Containers {
		cs = append(cs, &pt.Spec.Containers[i])
	}
	return cs
}

// TestRestrictedPodSecurity: every pod of every applied kustomization is admitted by the Pod
// Security "restricted" profile (the admission controller's own checks, latest version);
// every container, init containers included, has the restricted settings in its own security
// context; and reservist's container is admitted by itself, whatever the pod around it says.
func TestRestrictedPodSecurity(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	admit := func(what string, meta *metav1.ObjectMeta, spec *corev1.PodSpec) {
		t.Helper()
		for _, r := range eval.EvaluatePod(restricted, meta, spec) {
			if !r.Allowed {
				t.Errorf("%s: Pod Security restricted refuses it: %s: %s", what, r.ForbiddenReason, r.ForbiddenDetail)
			}
		}
	}
	uid := dockerUser(t)
	for _, dir := range applied {
		for _, pt := range kustomize(t, dir).podTemplates() {
			what := dir + ": " + pt.owner
			admit(what, &pt.template.ObjectMeta, &pt.template.Spec)
			for _, c := range allContainers(pt.template) {
				checkContainerSecurity(t, what+": container "+c.Name, c)
				if isReservistImage(c.Image) && c.SecurityContext != nil {
					if u := c.SecurityContext.RunAsUser; u == nil || *u != uid {
						t.Errorf("%s: container %s runs the reservist image as user %s; the Dockerfile's USER is %d", what, c.Name, deref(u), uid)
					}
				}
			}
			// The sidecar alone in a pod with no pod-level security context.
			alone := pt.template.Spec.DeepCopy()
			alone.SecurityContext = nil
			alone.Containers = slices.DeleteFunc(alone.Containers, func(c corev1.Container) bool { return c.Name != sidecarName })
			alone.InitContainers = nil
			if len(alone.Containers) > 0 {
				admit(what+": the reservist container alone", &pt.template.ObjectMeta, alone)
			}
		}
	}
}

func checkContainerSecurity(t *testing.T, what string, c *corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s has no securityContext", what)
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: runAsNonRoot is not true", what)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: runAsUser is not a non-zero number (runAsNonRoot cannot check a named image user)", what)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", what)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", what)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s is privileged", what)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %v; want drop [ALL] and nothing added", what, sc.Capabilities)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile %v; want RuntimeDefault", what, sc.SeccompProfile)
	}
}

// TestSidecarListeners: the callback listener on every interface with the probes on it, the
// admin listener on loopback and reachable by nothing outside the pod, the metrics listener
// on the port the PodMonitor scrapes and the NetworkPolicy admits from the monitoring
// namespace, the Service to the callback port.
func TestSidecarListeners(t *testing.T) {
	for _, dir := range workloadDirs {
		t.Run(dir, func(t *testing.T) {
			b, s := theSidecar(t, dir)
			listenHost, listen := addrPort(t, "RESERVIST_LISTEN", s.value(t, "RESERVIST_LISTEN"))
			adminHost, admin := addrPort(t, "RESERVIST_ADMIN_LISTEN", s.value(t, "RESERVIST_ADMIN_LISTEN"))
			_, metrics := addrPort(t, "RESERVIST_METRICS_LISTEN", s.value(t, "RESERVIST_METRICS_LISTEN"))

			if ip := net.ParseIP(listenHost); listenHost == "localhost" || (ip != nil && ip.IsLoopback()) {
				t.Errorf("RESERVIST_LISTEN is loopback: the kubelet's probes and the Service could not reach it")
			}
			if ip := net.ParseIP(adminHost); adminHost != "localhost" && (ip == nil || !ip.IsLoopback()) {
				t.Errorf("RESERVIST_ADMIN_LISTEN %s is not loopback: its reload and playground endpoints are unauthenticated", s.value(t, "RESERVIST_ADMIN_LISTEN"))
			}
			if len(slices.Compact(slices.Sorted(slices.Values([]int32{listen, admin, metrics})))) != 3 {
				t.Errorf("listeners share a port: callbacks %d, admin %d, metrics %d", listen, admin, metrics)
			}

			// The container declares the callback and metrics ports, under these names, and
			// not the admin port (nothing outside the pod can reach it).
			for name, want := range map[string]int32{"callbacks": listen, "metrics": metrics} {
				if got, ok := containerPort(s.c, intstr.FromString(name)); !ok || got != want {
					t.Errorf("containerPort %q is %d; want %d", name, got, want)
				}
			}
			if _, ok := containerPort(s.c, intstr.FromInt32(admin)); ok {
				t.Errorf("the admin port %d is declared as a containerPort: it is on loopback", admin)
			}
			for _, cp := range s.c.Ports {
				if cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP {
					t.Errorf("containerPort %s is %s; want TCP", cp.Name, cp.Protocol)
				}
			}

			// Probes: /healthz and /readyz on the callback listener, over HTTP.
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"livenessProbe", s.c.LivenessProbe, "/healthz"}, {"readinessProbe", s.c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("no %s with httpGet", p.name)
					continue
				}
				if p.probe.HTTPGet.Path != p.path {
					t.Errorf("%s path %s; want %s", p.name, p.probe.HTTPGet.Path, p.path)
				}
				if got, ok := containerPort(s.c, p.probe.HTTPGet.Port); !ok || got != listen {
					t.Errorf("%s port %s is %d; want the callback listener's %d", p.name, p.probe.HTTPGet.Port.String(), got, listen)
				}
				if p.probe.HTTPGet.Scheme != "" && p.probe.HTTPGet.Scheme != corev1.URISchemeHTTP {
					t.Errorf("%s scheme %s; reservist serves plain HTTP (TLS ends before the pod)", p.name, p.probe.HTTPGet.Scheme)
				}
				if p.probe.TimeoutSeconds < 1 || p.probe.PeriodSeconds < 1 || p.probe.FailureThreshold < 1 {
					t.Errorf("%s: set its timing explicitly (timeoutSeconds %d, periodSeconds %d, failureThreshold %d)", p.name, p.probe.TimeoutSeconds, p.probe.PeriodSeconds, p.probe.FailureThreshold)
				}
			}
			if l := s.c.LivenessProbe; l != nil && l.HTTPGet != nil && l.HTTPGet.Path == "/readyz" {
				t.Error("the liveness probe must not be /readyz: a stale database would restart every pod")
			}

			// The Service: exactly the callback port, to the pods.
			if len(b.services) != 1 {
				t.Fatalf("%d Services; want 1", len(b.services))
			}
			svc := b.services[0]
			if !selects(t, "Service "+svc.Name, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, s.podTemplate) {
				t.Errorf("Service %s does not select %s's pods", svc.Name, s.owner)
			}
			if len(svc.Spec.Ports) != 1 {
				t.Errorf("Service %s has %d ports; want the callback port only", svc.Name, len(svc.Spec.Ports))
			}
			for _, p := range svc.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				if got, ok := containerPort(s.c, target); !ok || got != listen {
					t.Errorf("Service port %s targets %s (%d); want the callback listener's %d", p.Name, target.String(), got, listen)
				}
			}

			// The PodMonitor scrapes the metrics listener's /metrics, under the job name the
			// alert rules use.
			if len(b.podMonitors) != 1 {
				t.Fatalf("%d PodMonitors; want 1", len(b.podMonitors))
			}
			pm := b.podMonitors[0]
			if !selects(t, "PodMonitor "+pm.Name, &pm.Spec.Selector, s.podTemplate) {
				t.Errorf("PodMonitor %s does not select %s's pods", pm.Name, s.owner)
			}
			if len(pm.Spec.PodMetricsEndpoints) != 1 {
				t.Fatalf("PodMonitor %s has %d endpoints; want 1", pm.Name, len(pm.Spec.PodMetricsEndpoints))
			}
			ep := pm.Spec.PodMetricsEndpoints[0]
			var scraped int32
			switch {
			case ep.Port != nil:
				scraped, _ = containerPort(s.c, intstr.FromString(*ep.Port))
			case ep.PortNumber != nil:
				scraped = *ep.PortNumber
			}
			if scraped != metrics {
				t.Errorf("PodMonitor scrapes port %d; want RESERVIST_METRICS_LISTEN's %d", scraped, metrics)
			}
			if ep.Path != "" && ep.Path != "/metrics" {
				t.Errorf("PodMonitor path %s; want /metrics", ep.Path)
			}
			job := ""
			for _, r := range ep.RelabelConfigs {
				if r.TargetLabel == "job" && r.Replacement != nil {
					job = *r.Replacement
				}
			}
			if job != alertJob {
				t.Errorf("PodMonitor sets job=%q; the alert rules expect job=%q", job, alertJob)
			}

			checkNetworkPolicy(t, b, s, listen, metrics)
		})
	}
}

// alertJob is the job label the alert rules match.
const alertJob = "reservist"

// monitoringNamespace is where the NetworkPolicy admits scrapes from.
var monitoringNamespace = map[string]string{"kubernetes.io/metadata.name": "monitoring"}

// checkNetworkPolicy: one policy selects the pods for ingress; it admits the callback port
// from anywhere and the metrics port from the monitoring namespace only, and nothing else.
func checkNetworkPolicy(t *testing.T, b *built, s sidecar, listen, metrics int32) {
	t.Helper()
	var np *networkingv1.NetworkPolicy
	for _, p := range b.networkPolicies {
		if selects(t, "NetworkPolicy "+p.Name, &p.Spec.PodSelector, s.podTemplate) {
			if np != nil {
				t.Errorf("NetworkPolicies %s and %s both select the pods", np.Name, p.Name)
			}
			np = p
		}
	}
	if np == nil {
		t.Error("no NetworkPolicy selects the pods")
		return
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("NetworkPolicy %s: policyTypes %v; want Ingress", np.Name, np.Spec.PolicyTypes)
	}
	admitted := map[int32][]networkingv1.NetworkPolicyPeer{} // port → from (nil: anywhere)
	for i, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Errorf("NetworkPolicy %s: ingress rule %d has no ports: it admits every port", np.Name, i)
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.EndPort != nil {
				t.Errorf("NetworkPolicy %s: ingress rule %d admits a range of ports", np.Name, i)
				continue
			}
			if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
				t.Errorf("NetworkPolicy %s: ingress rule %d: protocol %s; want TCP", np.Name, i, *p.Protocol)
			}
			n, ok := containerPort(s.c, *p.Port)
			if !ok {
				t.Errorf("NetworkPolicy %s: port %s is no port of the reservist container", np.Name, p.Port.String())
				continue
			}
			if rule.From == nil {
				admitted[n] = nil
			} else if peers, seen := admitted[n]; !seen || peers != nil {
				admitted[n] = append(peers, rule.From...)
			}
		}
	}
	if peers, ok := admitted[listen]; !ok {
		t.Errorf("NetworkPolicy %s does not admit the callback port %d", np.Name, listen)
	} else if peers != nil {
		t.Logf("NetworkPolicy %s admits the callback port from %v only", np.Name, peers)
	}
	if peers, ok := admitted[metrics]; !ok {
		t.Errorf("NetworkPolicy %s does not admit the metrics port %d", np.Name, metrics)
	} else {
		if peers == nil {
			t.Errorf("NetworkPolicy %s admits the metrics port from anywhere; want the monitoring namespace", np.Name)
		}
		for _, p := range peers {
			if p.IPBlock != nil || p.PodSelector != nil || p.NamespaceSelector == nil ||
				!reflect.DeepEqual(p.NamespaceSelector.MatchLabels, monitoringNamespace) || len(p.NamespaceSelector.MatchExpressions) > 0 {
				t.Errorf("NetworkPolicy %s admits the metrics port from %v; want only namespaceSelector %v", np.Name, p, monitoringNamespace)
			}
		}
	}
	for port := range admitted {
		if port != listen && port != metrics {
			t.Errorf("NetworkPolicy %s admits port %d, which is neither the callback nor the metrics port", np.Name, port)
		}
	}
}

// TestSidecarDrain: SIGTERM first keeps serving for --shutdown-delay with /readyz at 503, then
// drains; the pod's grace period outlasts both with a margin, so the kubelet's SIGKILL never
// cuts a drain short.
func TestSidecarDrain(t *testing.T) {
	for _, dir := range workloadDirs {
		_, s := theSidecar(t, dir)
		delay := s.duration(t, "RESERVIST_SHUTDOWN_DELAY", 0)
		budget := s.duration(t, "RESERVIST_RESPONSE_BUDGET", defaultResponseBudget)
		if delay < 5*time.Second {
			t.Errorf("%s: RESERVIST_SHUTDOWN_DELAY %s; endpoint removal takes seconds to reach kube-proxy, Ingress and load balancers", dir, delay)
		}
		g := s.template.Spec.TerminationGracePeriodSeconds
		if g == nil {
			t.Errorf("%s: terminationGracePeriodSeconds is not set", dir)
			continue
		}
		grace := time.Duration(*g) * time.Second
		if need := delay + budget + restDrain + drainMargin; grace < need {
			t.Errorf("%s: terminationGracePeriodSeconds %s; want at least %s (shutdown delay %s + response budget %s + REST calls in flight %s + margin %s)",
				dir, grace, need, delay, budget, restDrain, drainMargin)
		}
		if s.c.Lifecycle != nil && s.c.Lifecycle.PreStop != nil && s.c.Lifecycle.PreStop.Exec != nil {
			t.Errorf("%s: a preStop exec hook: the distroless image has no shell or sleep to run", dir)
		}
	}
}

// TestSidecarSecrets: credentials only by secretKeyRef, never as values, and the outbox URL
// from a Secret in the PostgreSQL overlay.
func TestSidecarSecrets(t *testing.T) {
	secretEnv := []string{"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET", "PGPASSWORD"}
	for _, dir := range applied {
		for _, pt := range kustomize(t, dir).podTemplates() {
			for _, c := range allContainers(pt.template) {
				for _, e := range c.Env {
					secretish := slices.Contains(secretEnv, e.Name) ||
						(e.Name == "RESERVIST_OUTBOX" && strings.HasPrefix(e.Value, "postgres"))
					if secretish && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
						t.Errorf("%s: %s: container %s: %s is not from a secretKeyRef", dir, pt.owner, c.Name, e.Name)
					}
				}
				for _, ef := range c.EnvFrom {
					if ef.SecretRef != nil {
						t.Errorf("%s: %s: container %s takes every key of Secret %s as env: name the ones it needs", dir, pt.owner, c.Name, ef.SecretRef.Name)
					}
				}
			}
		}
	}
	for _, dir := range workloadDirs {
		_, s := theSidecar(t, dir)
		for _, name := range []string{"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"} {
			e, ok := s.env[name]
			if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s: %s is not from a Secret", dir, name)
			} else if o := e.ValueFrom.SecretKeyRef.Optional; o != nil && *o {
				t.Errorf("%s: %s is optional: reservist would start without it", dir, name)
			}
		}
	}
}

// TestEmbeddedOutbox: the bbolt outbox in a state directory on an emptyDir of bounded size.
func TestEmbeddedOutbox(t *testing.T) {
	_, s := theSidecar(t, "overlays/embedded")
	if got := s.value(t, "RESERVIST_OUTBOX"); got != "bbolt" {
		t.Errorf("RESERVIST_OUTBOX %q; want bbolt", got)
	}
	dir := s.value(t, "RESERVIST_STATE_DIR")
	m := mountAt(s, dir)
	if m == nil {
		t.Fatalf("nothing is mounted at RESERVIST_STATE_DIR %s: the outbox would be on the read-only root", dir)
	}
	if m.ReadOnly || m.SubPath != "" || m.SubPathExpr != "" {
		t.Errorf("the state volume is mounted read-only or with a subPath")
	}
	v := volume(s, m.Name)
	if v == nil || v.EmptyDir == nil {
		t.Fatalf("the state volume %s is not an emptyDir (see the overlay's comment for the choice)", m.Name)
	}
	if v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.IsZero() {
		t.Errorf("the state emptyDir has no sizeLimit")
	}
	if d := dockerEnv(t)["RESERVIST_STATE_DIR"]; d != dir {
		t.Errorf("RESERVIST_STATE_DIR %s; the Dockerfile's is %s", dir, d)
	}
}

// TestPostgresOutbox: the URL from a Secret, no state volume, at least two replicas, and the
// optional migration Job runs `reservist migrate --outbox` with the same kind of reference.
func TestPostgresOutbox(t *testing.T) {
	_, s := theSidecar(t, "overlays/postgres")
	e, ok := s.env["RESERVIST_OUTBOX"]
	if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("RESERVIST_OUTBOX is not from a secretKeyRef: %+v", e)
	}
	if o := e.ValueFrom.SecretKeyRef.Optional; o != nil && *o {
		t.Error("RESERVIST_OUTBOX is optional: without the Secret reservist would fall back to bbolt on a read-only root")
	}
	if _, ok := s.env["RESERVIST_STATE_DIR"]; ok {
		t.Error("RESERVIST_STATE_DIR is set: the shared outbox needs no state directory")
	}
	for _, m := range s.c.VolumeMounts {
		if v := volume(s, m.Name); v == nil || v.ConfigMap == nil {
			t.Errorf("volume %s at %s: the shared outbox needs no volume but the rules", m.Name, m.MountPath)
		}
	}
	if s.replicas < 2 {
		t.Errorf("%d replicas; want at least 2, so that one carries out what another left", s.replicas)
	}

	b := kustomize(t, "overlays/postgres/migrate")
	if len(b.jobs) != 1 || len(b.objects) != 1 {
		t.Fatalf("overlays/postgres/migrate: %d objects, %d Jobs; want the migration Job only", len(b.objects), len(b.jobs))
	}
	job := b.jobs[0]
	pod := job.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("Job %s: want one container", job.Name)
	}
	c := pod.Containers[0]
	entry := dockerEntrypoint(t)
	if want := []string{entry[0]}; !slices.Equal(c.Command, want) {
		t.Errorf("Job %s: command %q; want %q, the image's binary without its serve", job.Name, c.Command, want)
	}
	if want := []string{"migrate", "--outbox", "$(RESERVIST_OUTBOX)"}; !slices.Equal(c.Args, want) {
		t.Errorf("Job %s: args %q; want %q", job.Name, c.Args, want)
	}
	var url *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "RESERVIST_OUTBOX" {
			url = &c.Env[i]
		}
	}
	if url == nil || url.ValueFrom == nil || url.ValueFrom.SecretKeyRef == nil {
		t.Errorf("Job %s: RESERVIST_OUTBOX is not from a secretKeyRef", job.Name)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("Job %s: restartPolicy %q", job.Name, pod.RestartPolicy)
	}
	if job.Spec.ActiveDeadlineSeconds == nil || job.Spec.BackoffLimit == nil {
		t.Errorf("Job %s: bound it with activeDeadlineSeconds and backoffLimit", job.Name)
	}
	if c.Image != s.c.Image {
		t.Errorf("Job %s runs %s; the sidecar runs %s", job.Name, c.Image, s.c.Image)
	}
}

func mountAt(s sidecar, dir string) *corev1.VolumeMount {
	for i, m := range s.c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(dir) {
			return &s.c.VolumeMounts[i]
		}
	}
	return nil
}

func volume(s sidecar, name string) *corev1.Volume {
	for i, v := range s.template.Spec.Volumes {
		if v.Name == name {
			return &s.template.Spec.Volumes[i]
		}
	}
	return nil
}

// TestDisruptionBudget: one PDB selects the pods, and with the replicas the overlay runs it
// lets at least one pod and at most all but one be evicted at a time.
func TestDisruptionBudget(t *testing.T) {
	for _, dir := range workloadDirs {
		b, s := theSidecar(t, dir)
		var n int
		for _, pdb := range b.pdbs {
			if !selects(t, "PodDisruptionBudget "+pdb.Name, pdb.Spec.Selector, s.podTemplate) {
				continue
			}
			n++
			if s.replicas < 2 {
				t.Errorf("%s: %d replica(s): a budget cannot keep one ready while another is evicted", dir, s.replicas)
			}
			var allowed int
			switch {
			case pdb.Spec.MaxUnavailable != nil && pdb.Spec.MinAvailable == nil:
				v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(s.replicas), true)
				if err != nil {
					t.Fatal(err)
				}
				allowed = v
			case pdb.Spec.MinAvailable != nil && pdb.Spec.MaxUnavailable == nil:
				v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(s.replicas), true)
				if err != nil {
					t.Fatal(err)
				}
				allowed = int(s.replicas) - v
			default:
				t.Errorf("%s: PodDisruptionBudget %s: set one of minAvailable and maxUnavailable", dir, pdb.Name)
				continue
			}
			if allowed < 1 || allowed > int(s.replicas)-1 {
				t.Errorf("%s: PodDisruptionBudget %s allows %d of %d pods to be evicted at once; want 1 to %d", dir, pdb.Name, allowed, s.replicas, s.replicas-1)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets select %s's pods; want 1 (the eviction API refuses pods that two select)", dir, n, s.owner)
		}
	}
}

// TestRulesConfigMap: rules.yaml reaches the sidecar from the generated ConfigMap, with the
// example rules' content, mounted as a whole directory so that the kubelet's ..data symlink
// swap reaches it and hot reload sees edits.
func TestRulesConfigMap(t *testing.T) {
	want := readFile(t, exampleRules)
	if got := readFile(t, "base/rules.yaml"); !bytes.Equal(got, want) {
		t.Errorf("base/rules.yaml differs from %s; copy it again: cp %s base/rules.yaml", exampleRules, exampleRules)
	}
	for _, dir := range workloadDirs {
		b, s := theSidecar(t, dir)
		rulesPath := s.value(t, "RESERVIST_RULES")
		if d := dockerEnv(t)["RESERVIST_RULES"]; d != rulesPath {
			t.Errorf("%s: RESERVIST_RULES %s; the Dockerfile's is %s", dir, rulesPath, d)
		}
		m := mountAt(s, path.Dir(rulesPath))
		if m == nil {
			t.Fatalf("%s: nothing is mounted at %s, the directory of RESERVIST_RULES", dir, path.Dir(rulesPath))
		}
		if !m.ReadOnly {
			t.Errorf("%s: the rules volume is mounted writable", dir)
		}
		var sub []string
		for _, vm := range s.c.VolumeMounts {
			if vm.SubPath != "" || vm.SubPathExpr != "" {
				sub = append(sub, vm.Name)
			}
		}
		if len(sub) > 0 {
			t.Errorf("%s: volumes %v are mounted with subPath: a subPath is a copy that ConfigMap updates do not reach", dir, sub)
		}
		v := volume(s, m.Name)
		if v == nil || v.ConfigMap == nil {
			t.Fatalf("%s: volume %s is not a ConfigMap volume", dir, m.Name)
		}
		if len(v.ConfigMap.Items) > 0 {
			t.Errorf("%s: ConfigMap volume %s lists items; mount every key, so that the file is %s", dir, m.Name, path.Base(rulesPath))
		}
		var cm *corev1.ConfigMap
		for _, c := range b.configMaps {
			if c.Name == v.ConfigMap.Name {
				cm = c
			}
		}
		if cm == nil {
			t.Fatalf("%s: ConfigMap %s is not in the output", dir, v.ConfigMap.Name)
		}
		if keys := slices.Sorted(maps.Keys(cm.Data)); !slices.Equal(keys, []string{path.Base(rulesPath)}) {
			t.Errorf("%s: ConfigMap %s has keys %v; want %s only", dir, cm.Name, keys, path.Base(rulesPath))
		}
		if got := cm.Data[path.Base(rulesPath)]; got != string(want) {
			t.Errorf("%s: ConfigMap %s: %s differs from %s", dir, cm.Name, path.Base(rulesPath), exampleRules)
		}
	}
}

// TestRulesEditReloads: an edited rules.yaml changes the ConfigMap's content and nothing
// else, so re-applying it is picked up by hot reload instead of rolling the pods.
func TestRulesEditReloads(t *testing.T) {
	fsys := copyToMemory(t, ".")
	edited := append(readFile(t, "base/rules.yaml"), []byte("# an edit\n")...)
	if err := fsys.WriteFile("/base/rules.yaml", edited); err != nil {
		t.Fatal(err)
	}
	for _, dir := range workloadDirs {
		before, after := kustomize(t, dir), kustomizeOn(t, fsys, "/"+dir)
		if len(before.objects) != len(after.objects) {
			t.Fatalf("%s: %d objects after editing rules.yaml, %d before", dir, len(after.objects), len(before.objects))
		}
		for i, o := range before.objects {
			a := after.objects[i]
			if o.kind == "ConfigMap" {
				if a.name != o.name {
					t.Errorf("%s: the ConfigMap's name changes with its content (%s → %s): every edit would roll the pods", dir, o.name, a.name)
				}
				continue
			}
			if !reflect.DeepEqual(o, a) {
				t.Errorf("%s: %s %s changes when only rules.yaml is edited", dir, o.kind, o.name)
			}
		}
	}
}

// copyToMemory copies the files under dir into an in-memory file system, at its root.
func copyToMemory(t *testing.T, dir string) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	disk := filesys.MakeFsOnDisk()
	err := disk.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := disk.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile("/"+p, data)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

// TestSidecarComponentOnStatefulSet: the component adds the sidecar to a StatefulSet too, and
// to nothing without the label.
func TestSidecarComponentOnStatefulSet(t *testing.T) {
	fsys := copyToMemory(t, ".")
	files := map[string]string{
		"/sts/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [workloads.yaml]
components: [../components/sidecar]
`,
		"/sts/workloads.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: with, labels: {reservist.io/sidecar: enabled}}
spec:
  serviceName: with
  selector: {matchLabels: {app: with}}
  template:
    metadata: {labels: {app: with}}
    spec:
      containers: [{name: app, image: registry.k8s.io/pause:3.10}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: without}
spec:
  selector: {matchLabels: {app: without}}
  template:
    metadata: {labels: {app: without}}
    spec:
      containers: [{name: app, image: registry.k8s.io/pause:3.10}]
`,
	}
	for name, data := range files {
		if err := fsys.WriteFile(name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	b := kustomizeOn(t, fsys, "/sts")
	if len(b.statefulSets) != 1 || len(b.deployments) != 1 {
		t.Fatalf("got %d StatefulSets and %d Deployments", len(b.statefulSets), len(b.deployments))
	}
	names := func(cs []corev1.Container) (n []string) {
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return n
	}
	if got := slices.Sorted(slices.Values(names(b.statefulSets[0].Spec.Template.Spec.Containers))); !slices.Equal(got, []string{"app", sidecarName}) {
		t.Errorf("the labelled StatefulSet has containers %v; want [app %s]", got, sidecarName)
	}
	if got := names(b.deployments[0].Spec.Template.Spec.Containers); !slices.Equal(got, []string{"app"}) {
		t.Errorf("the unlabelled Deployment has containers %v; want [app]", got)
	}
}

// TestSidecarResources: requests and a memory limit from the README's measurements, no CPU
// limit, GOMEMLIMIT the memory limit in bytes, the public URL a bare origin.
func TestSidecarResources(t *testing.T) {
	for _, dir := range workloadDirs {
		_, s := theSidecar(t, dir)
		r := s.c.Resources
		memLimit, ok := r.Limits[corev1.ResourceMemory]
		if !ok {
			t.Errorf("%s: no memory limit", dir)
		}
		// At least the peak measured with 20,000 REST actions pending (76 MB).
		if memLimit.Cmp(resource.MustParse("80Mi")) < 0 {
			t.Errorf("%s: memory limit %s is under the 76 MB measured with 20,000 actions pending", dir, memLimit.String())
		}
		memReq, ok := r.Requests[corev1.ResourceMemory]
		if !ok || memReq.Cmp(resource.MustParse("32Mi")) < 0 || memReq.Cmp(memLimit) > 0 {
			t.Errorf("%s: memory request %s; want at least the 26-29 MB peak of sustained load, at most the limit", dir, memReq.String())
		}
		if _, ok := r.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("%s: no CPU request", dir)
		}
		if _, ok := r.Limits[corev1.ResourceCPU]; ok {
			t.Errorf("%s: a CPU limit: throttling would eat into TaskRouter's 5-second callback deadline", dir)
		}

		e, ok := s.env["GOMEMLIMIT"]
		switch {
		case !ok || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil:
			t.Errorf("%s: GOMEMLIMIT is not from a resourceFieldRef", dir)
		default:
			ref := e.ValueFrom.ResourceFieldRef
			if ref.Resource != "limits.memory" || (ref.ContainerName != "" && ref.ContainerName != sidecarName) {
				t.Errorf("%s: GOMEMLIMIT from %s of %q; want limits.memory of %s", dir, ref.Resource, ref.ContainerName, sidecarName)
			}
			if !ref.Divisor.IsZero() && ref.Divisor.Cmp(resource.MustParse("1")) != 0 {
				t.Errorf("%s: GOMEMLIMIT divisor %s: Go reads a bare number as bytes, so the divisor must be 1", dir, ref.Divisor.String())
			}
		}

		u, err := url.Parse(s.value(t, "RESERVIST_PUBLIC_URL"))
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			t.Errorf("%s: RESERVIST_PUBLIC_URL %q; want https://HOST[:PORT], the AssignmentCallbackUrl's scheme and host", dir, s.value(t, "RESERVIST_PUBLIC_URL"))
		}
		if _, err := time.ParseDuration(s.value(t, "RESERVIST_RESERVATION_TIMEOUT")); err != nil {
			t.Errorf("%s: RESERVIST_RESERVATION_TIMEOUT: %v", dir, err)
		}
		if !isReservistImage(s.c.Image) || !strings.Contains(s.c.Image, "/") || !strings.Contains(s.c.Image, ":") {
			t.Errorf("%s: the sidecar runs image %q; want the base's images: entry applied (a registry and a tag)", dir, s.c.Image)
		}
	}
}
