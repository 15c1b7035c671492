package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

// TestPostgresOverlayRuns runs the PostgreSQL overlay against the real binary and a real
// PostgreSQL server: the migration Job's command and arguments (with $(RESERVIST_OUTBOX)
// expanded as the kubelet does) create the schema; then the sidecar's environment, the URL
// standing in for the Secret's, serves with the outbox "ok" on /readyz, without a state
// directory: the overlay mounts none on a read-only root, so reservist must write nothing
// there.
func TestPostgresOverlayRuns(t *testing.T) {
	bin := reservistBinary(t)
	db := pgtest.Start(t).NewDatabase(t)

	b := kustomize(t, "overlays/postgres/migrate")
	if len(b.jobs) != 1 {
		t.Fatalf("overlays/postgres/migrate: %d Jobs, want 1", len(b.jobs))
	}
	c := b.jobs[0].Spec.Template.Spec.Containers[0]
	var args []string
	for _, a := range c.Args {
		args = append(args, strings.ReplaceAll(a, "$(RESERVIST_OUTBOX)", db))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "the outbox schema is at version") {
		t.Fatalf("the migration Job's %s %q: %v\n%s", c.Command, c.Args, err, out)
	}

	_, s := theSidecar(t, "overlays/postgres")
	env := sidecarEnv(t, s)
	env["RESERVIST_OUTBOX"] = db
	delete(env, "PGPASSWORD") // the test server trusts its loopback clients
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("version: 1\nrules:\n  - name: r\n    when: \"true\"\n    do: accept\n    via: rest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env["RESERVIST_RULES"] = rules
	// The image's state directory, on a read-only root: nothing may be created there.
	readOnly := filepath.Join(dir, "root")
	if err := os.Mkdir(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(readOnly, "var", "lib", "reservist")
	env["RESERVIST_STATE_DIR"] = state
	var kv []string
	for k, v := range env {
		if k != "RESERVIST_LISTEN" && k != "RESERVIST_ADMIN_LISTEN" && k != "RESERVIST_PUBLIC_URL" {
			kv = append(kv, k+"="+v)
		}
	}
	p := testkit.StartProcess(t, bin, kv, "--twilio-base-url", "http://127.0.0.1:1")
	if code, body := p.Ready(); body != `{"status":"ok","rules":"ok","outbox":"ok"}`+"\n" {
		t.Errorf("/readyz = %d %s; want the shared outbox ok", code, body)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the PostgreSQL overlay's reservist made %s (%v)", state, err)
	}
}
