package cases

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

const hoursRules = `version: 1
schedules:
  support:
    hours: {mon-fri: "08:00-18:00"}
rules:
  - name: open
    when: open("support")
    do: accept
`

// writeCase writes a case file and its golden file (when golden is not "") into dir.
func writeCase(t *testing.T, dir, name, body, golden string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if golden != "" {
		g := strings.TrimSuffix(name, filepath.Ext(name)) + ".golden.json"
		if err := os.WriteFile(filepath.Join(dir, g), []byte(golden), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Under rules that read the time, a case is decided at its Timestamp or not at all: one
// without a usable Timestamp fails, named, saying what to add, and --update writes it no
// golden file.
func TestRunPinsTime(t *testing.T) {
	set, err := rules.Parse("rules.yaml", []byte(hoursRules))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const open = `{"rule": "open", "response": {"instruction": "accept"}, "rest": null}`
	writeCase(t, dir, "monday.yaml", "Timestamp: 2026-03-09T09:15:00Z\nTaskAttributes: {}\nWorkerAttributes: {}\n", open)
	writeCase(t, dir, "epoch.form", "Timestamp=1773062100&TaskAttributes=%7B%7D&WorkerAttributes=%7B%7D\n", open)
	writeCase(t, dir, "unpinned.yaml", "TaskAttributes: {}\nWorkerAttributes: {}\n", open)
	writeCase(t, dir, "unpinned-form.form", "TaskAttributes=%7B%7D&WorkerAttributes=%7B%7D\n", "")
	writeCase(t, dir, "garbled.yaml", "Timestamp: next tuesday\nTaskAttributes: {}\nWorkerAttributes: {}\n", open)
	cs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(engine.New(set), cs, nil)
	if rep.Passed != 2 || rep.Failed != 3 {
		t.Errorf("Run = %d passed, %d failed; want 2 and 3", rep.Passed, rep.Failed)
	}
	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{
		"--- FAIL: unpinned (" + filepath.Join(dir, "unpinned.yaml") + ")\n    the case has no Timestamp, and rules.yaml reads the time (now, open); add one to pin the callback's time, like Timestamp: 2026-03-09T09:15:00-04:00",
		"--- FAIL: unpinned-form (" + filepath.Join(dir, "unpinned-form.form") + ")\n    the case has no Timestamp, and rules.yaml reads the time (now, open); add one to pin the callback's time, like &Timestamp=1773062100",
		`--- FAIL: garbled (` + filepath.Join(dir, "garbled.yaml") + `)` + "\n" + `    the case's Timestamp "next tuesday" is neither Unix epoch seconds`,
		"2 passed, 3 failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	written, err := rep.Update()
	if len(written) != 0 || err == nil || !strings.Contains(err.Error(), "case unpinned-form ("+filepath.Join(dir, "unpinned-form.form")+") is not decided: the case has no Timestamp") {
		t.Errorf("Update() = %v, %v; want nothing written, and an error naming each undecided case", written, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unpinned-form.golden.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Update wrote a golden file for a case that was not decided: %v", err)
	}

	// The same cases under rules that read no time pass without a Timestamp.
	plain, err := rules.Parse("rules.yaml", []byte("version: 1\nrules:\n  - {name: open, when: 'true', do: accept}\n"))
	if err != nil {
		t.Fatal(err)
	}
	unpinned := regexp.MustCompile(`^unpinned$`)
	if rep := Run(engine.New(plain), cs, unpinned); rep.Passed != 1 || rep.Failed != 0 {
		t.Errorf("unpinned under rules that read no time: %d passed, %d failed; want it to pass", rep.Passed, rep.Failed)
	}
}

// A captured callback replays as it was decided: one without a usable Timestamp gets the
// time it was decided at; one with a Timestamp keeps it as sent.
func TestCaptureKeepsTheTime(t *testing.T) {
	dir := t.TempDir()
	c, _ := newCapturer(t, CaptureOptions{Dir: dir})
	set, err := rules.Parse("rules.yaml", []byte(hoursRules))
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(set)
	arrived := time.Date(2026, 3, 9, 13, 15, 0, 250_000_000, time.UTC)
	stamped := testkit.Callback(1, `{}`)
	stamped.Set("Timestamp", "1773148500")
	unstamped := testkit.Callback(2, `{}`)
	unstamped.Del("Timestamp")
	garbled := testkit.Callback(3, `{}`)
	garbled.Set("Timestamp", "soon")
	for _, p := range []url.Values{stamped, unstamped, garbled} {
		c.Observe(p, e.Decide(p, arrived))
	}
	c.Close()
	files := formFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("%d files; want 3", len(files))
	}
	for i, want := range []string{"1773148500", "1773062100.25", "1773062100.25"} {
		cs, err := LoadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := cs.Params.Get("Timestamp"); got != want {
			t.Errorf("captured case %d has Timestamp %q; want %q", i+1, got, want)
		}
		if err := Pinned(set, cs); err != nil {
			t.Errorf("captured case %d cannot be replayed: %v", i+1, err)
		}
	}
}
