package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/reservist/reservist/internal/cli"
	"github.com/reservist/reservist/internal/config"
	"github.com/reservist/reservist/rules"
)

// The deploy examples are tested here, in package main, because the serve command's flag
// set is only reachable from inside it.

// Kubernetes objects, as much of them as the checks read.
type (
	k8sObject struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string
		Metadata   struct{ Name string }
	}
	configMap struct {
		Data map[string]string
	}
	secret struct {
		Data       map[string]string
		StringData map[string]string `yaml:"stringData"`
	}
	deployment struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			}
			Template struct {
				Metadata struct {
					Labels      map[string]string
					Annotations map[string]string
				}
				Spec podSpec
			}
		}
	}
	podSpec struct {
		Containers []container
		Volumes    []struct {
			Name      string
			ConfigMap *struct {
				Name  string
				Items []any
			} `yaml:"configMap"`
			EmptyDir              *struct{} `yaml:"emptyDir"`
			PersistentVolumeClaim *struct{} `yaml:"persistentVolumeClaim"`
		}
	}
	container struct {
		Name    string
		Image   string
		Command []string
		Args    []string
		Env     []struct {
			Name      string
			Value     string
			ValueFrom *struct {
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		}
		Ports []struct {
			Name          string
			ContainerPort int `yaml:"containerPort"`
		}
		VolumeMounts []struct {
			Name      string
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
	}
	probe struct {
		HTTPGet *struct {
			Path string
			Port any // a number or a port name
		} `yaml:"httpGet"`
	}
	service struct {
		Spec struct {
			Selector map[string]string
			Ports    []struct {
				Name       string
				Port       int
				TargetPort any `yaml:"targetPort"`
			}
		}
	}
)

// manifest is every Kubernetes document under deploy/, by kind, each as its YAML node.
type manifest map[string][]*yaml.Node

func readManifests(t *testing.T) manifest {
	t.Helper()
	files, _ := filepath.Glob("deploy/*.yaml")
	more, _ := filepath.Glob("deploy/*.yml")
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no YAML files in deploy/")
	}
	m := manifest{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 1; ; i++ {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			var obj k8sObject
			if err := doc.Decode(&obj); err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if obj.APIVersion == "" || obj.Kind == "" || obj.Metadata.Name == "" {
				t.Fatalf("%s: document %d has no apiVersion, kind or metadata.name", f, i)
			}
			m[obj.Kind] = append(m[obj.Kind], &doc)
		}
	}
	return m
}

// one decodes the only document of a kind.
func (m manifest) one(t *testing.T, kind string, into any) {
	t.Helper()
	if len(m[kind]) != 1 {
		t.Fatalf("deploy/ has %d %s documents; want 1", len(m[kind]), kind)
	}
	if err := m[kind][0].Decode(into); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

// named finds the document of a kind with a name.
func (m manifest) named(kind, name string, into any) bool {
	for _, doc := range m[kind] {
		var obj k8sObject
		if doc.Decode(&obj) == nil && obj.Metadata.Name == name {
			return doc.Decode(into) == nil
		}
	}
	return false
}

// dockerfile is what the checks read of deploy/Dockerfile.
type dockerfile struct {
	from       []string          // every stage's image
	env        map[string]string // the final stage's ENV
	expose     []int
	entrypoint []string
	cmd        []string
	user       string
	runs       []string
}

// readDockerfile reads the instructions the checks need; continuation lines are joined.
func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile("deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var d dockerfile
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	execForm := func(s string) []string {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("Dockerfile: %q is not in exec form (a JSON list): %v", s, err)
		}
		return v
	}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			d.from = append(d.from, strings.Fields(rest)[0])
			d.env = map[string]string{} // a new stage starts afresh
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: write ENV as KEY=VALUE, not %q", kv)
				}
				d.env[k] = strings.Trim(v, `"`)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Fatalf("Dockerfile: EXPOSE %q: %v", p, err)
				}
				d.expose = append(d.expose, n)
			}
		case "ENTRYPOINT":
			d.entrypoint = execForm(rest)
		case "CMD":
			d.cmd = execForm(rest)
		case "USER":
			d.user = rest
		case "RUN":
			d.runs = append(d.runs, rest)
		}
	}
	return d
}

// serveFlags lists the serve command's flags, read from its -h output: config.go builds its
// flag set inside parseServeConfig and exports no list.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	var help bytes.Buffer
	if _, err := config.ParseServe([]string{"-h"}, func(string) string { return "" }, &help); cli.Code(err, io.Discard) != cli.OK {
		t.Fatalf("serve -h: %v", err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(help.String(), -1) {
		flags[m[1]] = true
	}
	if !flags["rules"] || !flags["listen"] {
		t.Fatalf("could not read the flags from serve -h:\n%s", help.String())
	}
	return flags
}

// serveFlagOf maps RESERVIST_NAME back to --name.
func serveFlagOf(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "RESERVIST_")), "_", "-")
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// parseServe runs the serve command's own configuration parser on args and an environment.
func parseServe(t *testing.T, what string, args []string, env map[string]string) *config.Serve {
	t.Helper()
	var stderr bytes.Buffer
	cfg, err := config.ParseServe(args, func(k string) string { return env[k] }, &stderr)
	if err != nil {
		t.Fatalf("%s: serve refuses the configuration: %v %s", what, err, stderr.String())
	}
	return cfg
}

func TestDeployDockerfile(t *testing.T) {
	d := readDockerfile(t)
	flags := serveFlags(t)
	defaults := parseServe(t, "defaults", nil, nil)

	final := d.from[len(d.from)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("Dockerfile: final image %s; want distroless static or scratch", final)
	}
	if u := strings.SplitN(d.user, ":", 2)[0]; u == "" || u == "0" || u == "root" {
		t.Errorf("Dockerfile: USER %q; want a non-root user", d.user)
	}
	build := strings.Join(d.runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-trimpath", `-ldflags "-s -w`} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile: no RUN has %s", want)
		}
	}
	if len(d.entrypoint) < 2 || d.entrypoint[1] != "serve" {
		t.Fatalf("Dockerfile: ENTRYPOINT %q; want [BINARY, serve]", d.entrypoint)
	}
	for name := range d.env {
		if strings.HasPrefix(name, "RESERVIST_") && !flags[serveFlagOf(name)] {
			t.Errorf("Dockerfile: ENV %s names no serve flag (--%s)", name, serveFlagOf(name))
		}
	}
	args := append(slices.Clone(d.entrypoint[2:]), d.cmd...)
	// Listening on every interface, the image must refuse to start without a token, as its
	// comment says; `docker run -e TWILIO_ACCOUNT_SID -e TWILIO_AUTH_TOKEN` makes it start.
	if _, err := config.ParseServe(args, func(k string) string { return d.env[k] }, io.Discard); err == nil {
		t.Error("Dockerfile: serve starts without TWILIO_AUTH_TOKEN on every interface")
	}
	env := maps.Clone(d.env)
	env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"] = "AC00000000000000000000000000000000", "standin0123456789"
	cfg := parseServe(t, "Dockerfile", args, env)

	// The image listens where the binary does by default, only on every interface.
	want := []int{port(t, defaults.Listen), port(t, defaults.AdminListen)}
	if got := []int{port(t, cfg.Listen), port(t, cfg.AdminListen)}; !slices.Equal(got, want) {
		t.Errorf("Dockerfile: listen and admin ports %v; want the defaults %v", got, want)
	}
	if got := slices.Sorted(slices.Values(d.expose)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("Dockerfile: EXPOSE %v; want %v (--listen and --admin-listen)", d.expose, want)
	}
	if cfg.Rules != "/etc/reservist/rules.yaml" {
		t.Errorf("Dockerfile: rules at %s; want /etc/reservist/rules.yaml", cfg.Rules)
	}
}

func TestDeployKubernetes(t *testing.T) {
	m := readManifests(t)
	d := readDockerfile(t)
	flags := serveFlags(t)
	defaults := parseServe(t, "defaults", nil, nil)

	var dep deployment
	m.one(t, "Deployment", &dep)
	pod := dep.Spec.Template.Spec
	var rs *container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "reservist" {
			rs = &pod.Containers[i]
		}
	}
	if rs == nil || len(pod.Containers) < 2 {
		t.Fatalf("Deployment: want the app's container and one named reservist, got %d containers", len(pod.Containers))
	}

	// reservist's environment: the image's, then the container's; Secret values are
	// stand-ins of the right shape, after checking the Secret has the key.
	env := maps.Clone(d.env)
	for _, e := range rs.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			var s secret
			if !m.named("Secret", ref.Name, &s) {
				t.Errorf("env %s: Secret %s is not in deploy/", e.Name, ref.Name)
			} else if _, ok := s.StringData[ref.Key]; !ok {
				if _, ok := s.Data[ref.Key]; !ok {
					t.Errorf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
				}
			}
			env[e.Name] = "standin0123456789"
			if e.Name == "TWILIO_ACCOUNT_SID" {
				env[e.Name] = "AC00000000000000000000000000000000"
			}
		default:
			env[e.Name] = e.Value
		}
		if strings.HasPrefix(e.Name, "RESERVIST_") && !flags[serveFlagOf(e.Name)] {
			t.Errorf("env %s names no serve flag (--%s)", e.Name, serveFlagOf(e.Name))
		}
	}
	if env["TWILIO_AUTH_TOKEN"] == "" {
		t.Error("reservist gets no TWILIO_AUTH_TOKEN: it must check Twilio's signature")
	}
	entry := d.entrypoint
	if len(rs.Command) > 0 {
		entry = rs.Command
	}
	if len(entry) < 2 || entry[1] != "serve" {
		t.Fatalf("reservist runs %q; want [BINARY, serve, ...]", entry)
	}
	args := append(slices.Clone(entry[2:]), rs.Args...)
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue // a flag's value
		}
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); !flags[name] {
			t.Errorf("reservist args: %s is no serve flag", a)
		}
	}
	cfg := parseServe(t, "Deployment", args, env)

	// Ports: the container's are the listeners', which are the binary's default ports.
	listen, admin := port(t, cfg.Listen), port(t, cfg.AdminListen)
	if want := port(t, defaults.Listen); listen != want {
		t.Errorf("--listen port %d; want the default %d", listen, want)
	}
	if want := port(t, defaults.AdminListen); admin != want {
		t.Errorf("--admin-listen port %d; want the default %d", admin, want)
	}
	if h, _, _ := net.SplitHostPort(cfg.Listen); h == "127.0.0.1" || h == "localhost" {
		t.Errorf("--listen %s is loopback: the kubelet's probes and the Service could not reach it", cfg.Listen)
	}
	named := map[string]int{}
	var declared []int
	for _, p := range rs.Ports {
		named[p.Name] = p.ContainerPort
		declared = append(declared, p.ContainerPort)
	}
	if got, want := slices.Sorted(slices.Values(declared)), slices.Sorted(slices.Values([]int{listen, admin})); !slices.Equal(got, want) {
		t.Errorf("reservist containerPorts %v; want %v (--listen and --admin-listen)", got, want)
	}
	if p, ok := dep.Spec.Template.Metadata.Annotations["prometheus.io/port"]; ok && p != strconv.Itoa(admin) {
		t.Errorf("prometheus.io/port %s; want the admin port %d", p, admin)
	}
	resolve := func(p any, ports map[string]int) int {
		switch v := p.(type) {
		case int:
			return v
		case string:
			return ports[v]
		}
		return 0
	}

	// Probes: /healthz and /readyz on the callback listener.
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", rs.LivenessProbe, "/healthz"}, {"readinessProbe", rs.ReadinessProbe, "/readyz"}} {
		switch {
		case pr.p == nil || pr.p.HTTPGet == nil:
			t.Errorf("reservist has no %s with httpGet", pr.name)
		case pr.p.HTTPGet.Path != pr.path:
			t.Errorf("%s path %s; want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		case resolve(pr.p.HTTPGet.Port, named) != listen:
			t.Errorf("%s port %v; want the callback listener's %d", pr.name, pr.p.HTTPGet.Port, listen)
		}
	}

	// Volumes: the rules directory from the ConfigMap, the state directory on a volume.
	volumes := map[string]int{}
	for i, v := range pod.Volumes {
		volumes[v.Name] = i
	}
	mounts := map[string]string{} // mount path → volume
	for _, vm := range rs.VolumeMounts {
		if vm.SubPath != "" {
			t.Errorf("volume %s is mounted with subPath: ConfigMap updates and the outbox need the whole directory", vm.Name)
		}
		mounts[vm.MountPath] = vm.Name
	}
	rulesDir, rulesFile := filepath.Dir(cfg.Rules), filepath.Base(cfg.Rules)
	if vol, ok := mounts[rulesDir]; !ok {
		t.Errorf("nothing is mounted at %s, the directory of --rules %s", rulesDir, cfg.Rules)
	} else if i, ok := volumes[vol]; !ok || pod.Volumes[i].ConfigMap == nil {
		t.Errorf("volume %s at %s is not a ConfigMap volume", vol, rulesDir)
	} else {
		cmv := pod.Volumes[i].ConfigMap
		if len(cmv.Items) > 0 {
			t.Errorf("ConfigMap volume %s lists items; mount every key so that the file is %s", vol, rulesFile)
		}
		var cm configMap
		if !m.named("ConfigMap", cmv.Name, &cm) {
			t.Errorf("ConfigMap %s is not in deploy/", cmv.Name)
		} else if src, ok := cm.Data[rulesFile]; !ok {
			t.Errorf("ConfigMap %s has no key %s (the --rules file name); keys: %v", cmv.Name, rulesFile, slices.Sorted(maps.Keys(cm.Data)))
		} else if _, err := rules.Parse(rulesFile, []byte(src)); err != nil {
			t.Errorf("ConfigMap %s: %s is not valid:\n%v", cmv.Name, rulesFile, err)
		}
	}
	if vol, ok := mounts[cfg.StateDir]; !ok {
		t.Errorf("nothing is mounted at --state-dir %s: the outbox would not survive a container restart", cfg.StateDir)
	} else if i, ok := volumes[vol]; !ok || (pod.Volumes[i].EmptyDir == nil && pod.Volumes[i].PersistentVolumeClaim == nil) {
		t.Errorf("--state-dir volume %s is neither an emptyDir nor a PersistentVolumeClaim", vol)
	}

	// The Service reaches the pod's ports, the app's and the callbacks.
	var svc service
	m.one(t, "Service", &svc)
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the Deployment's pods", k, v)
		}
	}
	podPorts := map[string]int{}
	var all []int
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			podPorts[p.Name] = p.ContainerPort
			all = append(all, p.ContainerPort)
		}
	}
	for _, p := range svc.Spec.Ports {
		target := p.TargetPort
		if target == nil {
			target = p.Port
		}
		if n := resolve(target, podPorts); !slices.Contains(all, n) {
			t.Errorf("Service port %s targets %v, which no container declares", p.Name, target)
		}
	}
}

// TestDeployProbePaths asks a running server for the probe paths the manifest names.
func TestDeployProbePaths(t *testing.T) {
	var dep deployment
	readManifests(t).one(t, "Deployment", &dep)
	base := serveExample(t, nil)
	for _, c := range dep.Spec.Template.Spec.Containers {
		for _, p := range []*probe{c.LivenessProbe, c.ReadinessProbe} {
			if c.Name != "reservist" || p == nil || p.HTTPGet == nil {
				continue
			}
			resp, err := http.Get(base + p.HTTPGet.Path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %s; want 200", p.HTTPGet.Path, resp.Status)
			}
		}
	}
}

// TestDeployNamesOnlyServeFlags checks every RESERVIST_ variable named anywhere in deploy/,
// comments included.
func TestDeployNamesOnlyServeFlags(t *testing.T) {
	flags := serveFlags(t)
	files, _ := filepath.Glob("deploy/*")
	re := regexp.MustCompile(`RESERVIST_[A-Z0-9_]+`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(data), -1) {
			if !flags[serveFlagOf(name)] {
				t.Errorf("%s names %s, but serve has no --%s", f, name, serveFlagOf(name))
			}
		}
	}
}
