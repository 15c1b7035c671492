package deploy_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The kustomizations a user applies, relative to deploy/. The base is built too (it must
// build), but only as a part of the overlays.
var (
	overlays     = []string{"overlays/embedded", "overlays/postgres"}
	applied      = append(slices.Clone(overlays), "overlays/postgres/migrate")
	workloadDirs = overlays // the ones with the workload and its sidecar
)

// built is one kustomization's output, decoded.
type built struct {
	dir     string
	objects []object

	deployments     []*appsv1.Deployment
	statefulSets    []*appsv1.StatefulSet
	jobs            []*batchv1.Job
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	networkPolicies []*networkingv1.NetworkPolicy
	podMonitors     []*monitoringv1.PodMonitor
	prometheusRules []*monitoringv1.PrometheusRule
}

// object is one decoded object with what identifies it.
type object struct {
	kind, name string
	value      any
}

// podTemplate is a workload's pod template, whichever kind of workload it is.
type podTemplate struct {
	owner    string // Kind/name
	replicas int32  // 1 for a Job
	selector *metav1.LabelSelector
	template *corev1.PodTemplateSpec
}

func (b *built) podTemplates() []podTemplate {
	var ts []podTemplate
	replicas := func(r *int32) int32 {
		if r == nil {
			return 1 // the API server's default
		}
		return *r
	}
	for _, d := range b.deployments {
		ts = append(ts, podTemplate{"Deployment/" + d.Name, replicas(d.Spec.Replicas), d.Spec.Selector, &d.Spec.Template})
	}
	for _, s := range b.statefulSets {
		ts = append(ts, podTemplate{"StatefulSet/" + s.Name, replicas(s.Spec.Replicas), s.Spec.Selector, &s.Spec.Template})
	}
	for _, j := range b.jobs {
		ts = append(ts, podTemplate{"Job/" + j.Name, 1, j.Spec.Selector, &j.Spec.Template})
	}
	return ts
}

// kustomizeOn builds the kustomization in dir (on fsys, relative to its root) the way
// `kubectl apply -k` does: no plugins, and no file from outside the kustomization's root.
func kustomizeOn(t *testing.T, fsys filesys.FileSystem, dir string) *built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fsys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &built{dir: dir}
	for _, r := range m.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		if err := b.add(data); err != nil {
			t.Fatalf("%s: %s: %v\n%s", dir, r.CurId(), err, data)
		}
	}
	return b
}

var builds = map[string]*built{}

// kustomize builds deploy/DIR from disk, once per test binary.
func kustomize(t *testing.T, dir string) *built {
	t.Helper()
	if b, ok := builds[dir]; ok {
		return b
	}
	b := kustomizeOn(t, filesys.MakeFsOnDisk(), dir)
	builds[dir] = b
	return b
}

// strict decodes data into v, refusing fields that v's type does not have (and duplicate
// fields): a misspelt or misplaced field in a manifest is an error here, where kubectl apply
// would drop it or refuse it only on a cluster.
func strict(data []byte, v any) error {
	return yaml.UnmarshalStrict(data, v)
}

// add decodes one object strictly into its API type, by apiVersion and kind.
func (b *built) add(data []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return err
	}
	decode := func(v any, meta *metav1.ObjectMeta) error {
		if err := strict(data, v); err != nil {
			return fmt.Errorf("%s: %w", tm.Kind, err)
		}
		if meta.Name == "" {
			return fmt.Errorf("%s without a name", tm.Kind)
		}
		b.objects = append(b.objects, object{tm.Kind, meta.Name, v})
		return nil
	}
	switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
	case "apps/v1 Deployment":
		v := new(appsv1.Deployment)
		b.deployments = append(b.deployments, v)
		return decode(v, &v.ObjectMeta)
	case "apps/v1 StatefulSet":
		v := new(appsv1.StatefulSet)
		b.statefulSets = append(b.statefulSets, v)
		return decode(v, &v.ObjectMeta)
	case "batch/v1 Job":
		v := new(batchv1.Job)
		b.jobs = append(b.jobs, v)
		return decode(v, &v.ObjectMeta)
	case "v1 Service":
		v := new(corev1.Service)
		b.services = append(b.services, v)
		return decode(v, &v.ObjectMeta)
	case "v1 ConfigMap":
		v := new(corev1.ConfigMap)
		b.configMaps = append(b.configMaps, v)
		return decode(v, &v.ObjectMeta)
	case "v1 Secret":
		// Decoded, so that the test that refuses Secrets in the output can name it.
		v := new(corev1.Secret)
		return decode(v, &v.ObjectMeta)
	case "policy/v1 PodDisruptionBudget":
		v := new(policyv1.PodDisruptionBudget)
		b.pdbs = append(b.pdbs, v)
		return decode(v, &v.ObjectMeta)
	case "networking.k8s.io/v1 NetworkPolicy":
		v := new(networkingv1.NetworkPolicy)
		b.networkPolicies = append(b.networkPolicies, v)
		return decode(v, &v.ObjectMeta)
	case "monitoring.coreos.com/v1 PodMonitor":
		v := new(monitoringv1.PodMonitor)
		b.podMonitors = append(b.podMonitors, v)
		return decode(v, &v.ObjectMeta)
	case "monitoring.coreos.com/v1 PrometheusRule":
		v := new(monitoringv1.PrometheusRule)
		b.prometheusRules = append(b.prometheusRules, v)
		return decode(v, &v.ObjectMeta)
	default:
		return fmt.Errorf("%s: no API type is known to this test; add one to built.add", gvk)
	}
}

// kustomizationDirs lists every directory under deploy/ with a kustomization file, and
// whether it is a Component (which is built only as a part of another).
func kustomizationDirs(t *testing.T) map[string]bool {
	t.Helper()
	dirs := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch d.Name() {
		case "kustomization.yaml", "kustomization.yml", "Kustomization":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k struct{ Kind string }
		if err := yaml.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dirs[filepath.ToSlash(filepath.Dir(path))] = k.Kind == "Component"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// readDocs splits a multi-document YAML file.
func readDocs(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---\n")) {
		if len(strings.TrimSpace(stripComments(string(d)))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
