package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerfile is what the checks read of the Dockerfile's final stage (and its RUN lines).
type dockerfile struct {
	from       []string          // every stage's image
	env        map[string]string // the final stage's ENV
	expose     []int32
	entrypoint []string
	user       string
	runs       []string
}

// isReservistImage says whether an image reference names the image the Dockerfile builds
// (reservist, in any registry, with any tag).
func isReservistImage(ref string) bool {
	name, _, _ := strings.Cut(path.Base(ref), "@")
	name, _, _ = strings.Cut(name, ":")
	return name == "reservist"
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	var d dockerfile
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "Dockerfile")))
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
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			d.from = append(d.from, strings.Fields(rest)[0])
			d.env, d.expose, d.entrypoint, d.user = map[string]string{}, nil, nil, ""
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
				n, err := strconv.ParseInt(strings.TrimSuffix(p, "/tcp"), 10, 32)
				if err != nil {
					t.Fatalf("Dockerfile: EXPOSE %q: %v", p, err)
				}
				d.expose = append(d.expose, int32(n))
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s is not in exec form: %v", rest, err)
			}
		case "USER":
			d.user = rest
		case "RUN":
			d.runs = append(d.runs, rest)
		}
	}
	if len(d.from) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	return d
}

func dockerEnv(t *testing.T) map[string]string { return readDockerfile(t).env }

func dockerEntrypoint(t *testing.T) []string {
	t.Helper()
	e := readDockerfile(t).entrypoint
	if len(e) < 2 || e[1] != "serve" {
		t.Fatalf("Dockerfile: ENTRYPOINT %q; want [BINARY, serve]", e)
	}
	return e
}

// dockerUser is the final stage's numeric USER.
func dockerUser(t *testing.T) int64 {
	t.Helper()
	u := readDockerfile(t).user
	uid, _, _ := strings.Cut(u, ":")
	n, err := strconv.ParseInt(uid, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("Dockerfile: USER %q; want a numeric non-root user, so that runAsNonRoot can check it", u)
	}
	return n
}

// TestDockerfile: a static binary on distroless as a numeric non-root user, its entrypoint
// `serve`, and the manifests' ports, paths and user agreeing with it.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if final := d.from[len(d.from)-1]; !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("Dockerfile: final image %s; want distroless static", final)
	}
	build := strings.Join(d.runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-trimpath", `-ldflags "-s -w`} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile: no RUN has %s", want)
		}
	}
	entry := dockerEntrypoint(t)
	uid := dockerUser(t)

	for _, dir := range workloadDirs {
		_, s := theSidecar(t, dir)
		if len(s.c.Command) > 0 || len(s.c.Args) > 0 {
			t.Errorf("%s: the sidecar overrides the image's entrypoint %q with %q %q; configure it by env instead", dir, entry, s.c.Command, s.c.Args)
		}
		if s.c.SecurityContext == nil {
			t.Errorf("%s: the sidecar has no securityContext", dir)
		} else if u := s.c.SecurityContext.RunAsUser; u == nil || *u != uid {
			t.Errorf("%s: runAsUser %s; the Dockerfile's USER is %d", dir, deref(u), uid)
		}
		// The callback port is one the image exposes.
		_, listen := addrPort(t, "RESERVIST_LISTEN", s.value(t, "RESERVIST_LISTEN"))
		if !slices.Contains(d.expose, listen) {
			t.Errorf("%s: the callback port %d is not among the Dockerfile's EXPOSE %v", dir, listen, d.expose)
		}
		// The image's listeners are the manifests': the admin listener on loopback and not
		// exposed, the metrics listener on the port Prometheus scrapes, exposed.
		for _, name := range []string{"RESERVIST_ADMIN_LISTEN", "RESERVIST_METRICS_LISTEN"} {
			if v, ok := s.env[name]; ok && v.Value != d.env[name] {
				t.Errorf("%s: %s %s; the Dockerfile's is %s", dir, name, v.Value, d.env[name])
			}
		}
		// Every path the image names is where the manifests put it.
		for _, name := range []string{"RESERVIST_RULES", "RESERVIST_STATE_DIR"} {
			if v, ok := s.env[name]; ok && v.Value != d.env[name] {
				t.Errorf("%s: %s %s; the Dockerfile's is %s", dir, name, v.Value, d.env[name])
			}
		}
	}
}

// TestDockerfileListeners: the image keeps the unauthenticated admin listener on loopback,
// unexposed, and serves metrics on an exposed port of their own.
func TestDockerfileListeners(t *testing.T) {
	d := readDockerfile(t)
	adminHost, admin := addrPort(t, "Dockerfile RESERVIST_ADMIN_LISTEN", d.env["RESERVIST_ADMIN_LISTEN"])
	if ip := net.ParseIP(adminHost); adminHost != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Errorf("Dockerfile: RESERVIST_ADMIN_LISTEN %s is not loopback: reload and the playground are unauthenticated", d.env["RESERVIST_ADMIN_LISTEN"])
	}
	if slices.Contains(d.expose, admin) {
		t.Errorf("Dockerfile: EXPOSE %v has the admin port %d, which is on loopback", d.expose, admin)
	}
	metricsHost, metrics := addrPort(t, "Dockerfile RESERVIST_METRICS_LISTEN", d.env["RESERVIST_METRICS_LISTEN"])
	if metricsHost != "" {
		t.Errorf("Dockerfile: RESERVIST_METRICS_LISTEN %s; want every interface (:PORT), for Prometheus", d.env["RESERVIST_METRICS_LISTEN"])
	}
	if !slices.Contains(d.expose, metrics) {
		t.Errorf("Dockerfile: EXPOSE %v lacks the metrics port %d", d.expose, metrics)
	}
}

// deref shows a pointer's value, or "unset".
func deref[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
