package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A dry run logs the REST parameters it would send, but a value that comes from a
// template (and so perhaps from attributes) only when it is a SID.
func TestServeDryRunRedactsTemplates(t *testing.T) {
	s := startServe(t, `version: 1
rules:
  - name: ring-back
    when: true
    do: call
    via: rest
    with:
      from: "+15005550006"
      to: ${ worker.attributes.contact_uri }
      url: https://example.com/twiml
      accept: true
`, nil)
	if code, body := s.post(t, "/assignment_callback", callback(1, `{}`)); code != 200 || body != "{}" {
		t.Fatalf("callback = %d %s", code, body)
	}
	eventually(t, "the dry-run line", func() bool { return len(s.log.records("dry-run")) == 1 })
	logs := s.log.String()
	if strings.Contains(logs, "client:alice") {
		t.Errorf("the worker's contact_uri reached the log:\n%s", logs)
	}
	for _, want := range []string{`"CallTo":["[redacted]"]`, `"CallFrom":["+15005550006"]`, `"CallUrl":["https://example.com/twiml"]`} {
		if !strings.Contains(logs, want) {
			t.Errorf("dry-run line lacks %s:\n%s", want, logs)
		}
	}
}

// check, test and explain read a rules file as serve does: a FIFO, a device or a file over
// the limit is refused at once with a message naming it, never read.
func TestCommandsReadRulesWithinTheLimit(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	huge := filepath.Join(dir, "huge.yaml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for path, want := range map[string]string{
		fifo:        "is a named pipe (FIFO), not a regular file",
		"/dev/zero": "is a device, not a regular file",
		huge:        "is 64.0 MiB, over the 8 MiB a rules file may be",
	} {
		for _, cmd := range []string{"check", "test", "explain"} {
			args := []string{cmd, "--rules", path}
			if cmd == "explain" {
				args = append(args, "case.yaml")
			}
			var stdout, stderr bytes.Buffer
			done := make(chan error, 1)
			go func() { done <- run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(stderr.String()+err.Error(), path+" "+want) {
					t.Errorf("%s --rules %s = %v, stderr %q; want it refused: %s", cmd, path, err, stderr.String(), want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s --rules %s did not return within 5s", cmd, path)
			}
		}
	}
}
