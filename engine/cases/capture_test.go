package cases

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

// callback is a callback with one parameter more, whose characters a form must escape.
func callback(n int, taskAttrs, workerAttrs string) url.Values {
	p := testkit.CallbackWith(uint64(n), taskAttrs, workerAttrs)
	p.Set("Extra", "a&b=c d+é")
	return p
}

// clock is a settable time for file names and the recount interval.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond) // every callback at its own time
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log output safely across goroutines.
type logBuffer = testkit.LogBuffer

func newCapturer(t *testing.T, o CaptureOptions) (*Capturer, *logBuffer) {
	t.Helper()
	log := &logBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(log, nil))
	if o.Now == nil {
		clk := &clock{t: time.Date(2026, 11, 22, 4, 17, 51, 0, time.UTC)}
		o.Now = clk.now
	}
	c := NewCapturer(o)
	t.Cleanup(c.Close)
	return c, log
}

func formFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.form"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Captured files are cases that `reservist test` reads back as the callbacks that came in,
// and that --update turns into passing golden cases.
func TestCaptureWritesCases(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "captured") // created by New
	c, _ := newCapturer(t, CaptureOptions{Dir: dir})
	sent := []url.Values{
		callback(1, `{"channel":"chat"}`, `{"open_chats":1}`),
		callback(2, `{"channel":"voice", "call_sid": "CA0123456789abcdef0123456789abcdef"}`, `{}`),
		callback(3, `not json`, `{}`),
	}
	for _, p := range sent {
		c.Observe(p, nil)
	}
	c.Close()

	files := formFiles(t, dir)
	if len(files) != len(sent) {
		t.Fatalf("%d files written; want %d: %v", len(files), len(sent), files)
	}
	for i, f := range files {
		// Names sort in arrival order and carry the ReservationSid.
		if want := sent[i].Get("ReservationSid") + ".form"; !strings.HasSuffix(f, want) {
			t.Errorf("file %d = %s; want a name ending in %s", i, filepath.Base(f), want)
		}
		if !strings.HasPrefix(filepath.Base(f), "20261122T041751.") {
			t.Errorf("file %d = %s; want it named after the time it arrived", i, filepath.Base(f))
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v; want 0600 (attributes hold personal data)", f, perm)
		}
		cs, err := LoadFile(f)
		if err != nil {
			t.Fatalf("LoadFile(%s): %v", f, err)
		}
		if got, want := cs.Params.Encode(), sent[i].Encode(); got != want {
			t.Errorf("case %s = %q; want the callback %q", f, got, want)
		}
	}
	if got := testutil.ToFloat64(c.captured); got != 3 {
		t.Errorf("captured = %v; want 3", got)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".capture-*")); len(tmp) > 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}

	// The whole workflow: load the directory, write golden files, and they pass.
	set, err := rules.Parse("rules.yaml", []byte("version: 1\nrules:\n  - name: chat\n    when: task.attributes.channel == \"chat\"\n    do: accept\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(set)
	cs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(e, cs, nil).Update(false); err != nil {
		t.Fatal(err)
	}
	rep := Run(e, cs, nil)
	if rep.Passed != 3 || rep.Failed != 0 {
		var b strings.Builder
		rep.Print(&b, false)
		t.Errorf("after --update, captured cases: %s", b.String())
	}
	if rep.Results[0].Got.Rule != "chat" || rep.Results[2].Got.Rule != "on_error" {
		t.Errorf("captured cases decided %s, %s; want chat, …, on_error", rep.Results[0].Got.Rule, rep.Results[2].Got.Rule)
	}
}

func TestRedact(t *testing.T) {
	keys := map[string]bool{"phone": true, "contact_uri": true, "from": true}
	for _, tc := range []struct{ in, want string }{
		{`{"channel":"chat"}`, `{"channel":"chat"}`},
		{`{ "channel" : "chat" }`, `{ "channel" : "chat" }`}, // untouched text keeps its formatting
		{`{"phone":"+15551230000","channel":"voice"}`, `{"channel":"voice","phone":"[redacted]"}`},
		{`{"Phone":"+15551230000"}`, `{"Phone":"[redacted]"}`}, // keys match in any case
		{`{"customer":{"contact":{"phone":"+1555"}},"n":12345678901234567890}`, `{"customer":{"contact":{"phone":"[redacted]"}},"n":12345678901234567890}`},
		{`{"calls":[{"from":"+1555","to":"+1666"},{"from":"+1777"}]}`, `{"calls":[{"from":"[redacted]","to":"+1666"},{"from":"[redacted]"}]}`},
		{`{"phone":{"home":"+1555","work":"+1666"}}`, `{"phone":"[redacted]"}`}, // a whole object under the key
		{`[{"phone":"+1555"}]`, `[{"phone":"[redacted]"}]`},
		{`{"url":"https://x/?a=1&b=<2>"  , "contact_uri":"client:alice"}`, `{"contact_uri":"[redacted]","url":"https://x/?a=1&b=<2>"}`},
		{`not json {"phone":"+1555"}`, Redacted},
		{`{"phone":"+1555"} trailing`, Redacted},
		{``, Redacted},
	} {
		if got := Redact(tc.in, keys); got != tc.want {
			t.Errorf("Redact(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	if got := Redact(`not json`, nil); got != `not json` {
		t.Errorf("Redact without keys = %q; want the text unchanged", got)
	}
}

// --capture-redact applies to TaskAttributes and WorkerAttributes at any depth, and to
// nothing else.
func TestCaptureRedacts(t *testing.T) {
	dir := t.TempDir()
	c, _ := newCapturer(t, CaptureOptions{Dir: dir, Redact: []string{"phone", "Contact_URI"}})
	c.Observe(callback(1, `{"customer":{"phone":"+15551230000","tier":"gold"}}`, `{"contact_uri":"client:alice","skills":["es"]}`), nil)
	c.Close()
	files := formFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d files; want 1", len(files))
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"15551230000", "alice"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("captured file holds %q after redaction:\n%s", secret, data)
		}
	}
	cs, err := LoadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cs.Params.Get("TaskAttributes"), `{"customer":{"phone":"[redacted]","tier":"gold"}}`; got != want {
		t.Errorf("TaskAttributes = %s; want %s", got, want)
	}
	if got, want := cs.Params.Get("WorkerAttributes"), `{"contact_uri":"[redacted]","skills":["es"]}`; got != want {
		t.Errorf("WorkerAttributes = %s; want %s", got, want)
	}
	if got := cs.Params.Get("WorkerSid"); got != testkit.WorkerSid {
		t.Errorf("WorkerSid = %s; want it unchanged", got)
	}
}

// --capture-max bounds the .form files in the directory, counting those already there;
// capture pauses when it is reached and resumes when files are moved out.
func TestCaptureMax(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hand-written.form"), []byte("TaskAttributes=%7B%7D\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "hand-written.golden.json"), []byte("{}"), 0o644) // not a case: not counted
	clk := &clock{t: time.Date(2026, 11, 22, 4, 17, 51, 0, time.UTC)}
	written := make(chan string, 10)
	c, log := newCapturer(t, CaptureOptions{Dir: dir, Max: 3, Now: clk.now, written: func(p string) { written <- p }})

	for i := range 5 {
		c.Observe(callback(i, `{}`, `{}`), nil)
	}
	// The two that fit are written; the writer handles the queue in order, so once the
	// dropped count reaches 3 every one of the five was handled.
	eventually(t, "five callbacks handled", func() bool { return testutil.ToFloat64(c.dropped.WithLabelValues(DroppedFull)) == 3 })
	if n := len(formFiles(t, dir)); n != 3 {
		t.Errorf("%d .form files with --capture-max 3; want 3", n)
	}
	if !strings.Contains(log.String(), "capture is paused") {
		t.Errorf("log does not say capture paused:\n%s", log)
	}
	if strings.Count(log.String(), "capture is paused") != 1 {
		t.Errorf("pause logged more than once:\n%s", log)
	}

	// Moving a file out resumes capture, once the directory is counted again.
	first := <-written
	<-written // the second of the two that fit
	if err := os.Rename(first, filepath.Join(t.TempDir(), "kept.form")); err != nil {
		t.Fatal(err)
	}
	clk.advance(recount)
	c.Observe(callback(10, `{}`, `{}`), nil)
	got := <-written
	if !strings.HasSuffix(got, fmt.Sprintf("WR%032x.form", 10)) {
		t.Errorf("after moving a file out, wrote %s; want the next callback's file", got)
	}
	if n := len(formFiles(t, dir)); n != 3 {
		t.Errorf("%d .form files; want 3", n)
	}
	if !strings.Contains(log.String(), "capture resumed") {
		t.Errorf("log does not say capture resumed:\n%s", log)
	}
}

// A directory that cannot be written is logged (once, not per callback) and counted;
// Observe does not block or fail.
func TestCaptureUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "captures") // under a regular file: not creatable, even as root
	c, log := newCapturer(t, CaptureOptions{Dir: dir})
	for i := range 20 {
		c.Observe(callback(i, `{}`, `{"phone":"+15551230000"}`), nil)
	}
	c.Close()
	if got := testutil.ToFloat64(c.dropped.WithLabelValues(DroppedError)); got != 20 {
		t.Errorf("dropped{error} = %v; want 20", got)
	}
	out := log.String()
	if !strings.Contains(out, "capture directory cannot be created") {
		t.Errorf("log does not say the directory cannot be created:\n%s", out)
	}
	// One line at the first failure, one at Close with the count since.
	if strings.Count(out, "callback not captured") != 1 || strings.Count(out, "callbacks not captured") != 1 {
		t.Errorf("20 failures logged as:\n%s\nwant one line at the first and one at Close (rate-limited)", out)
	}
	if strings.Contains(out, "15551230000") {
		t.Errorf("an attribute value reached the log:\n%s", out)
	}
}

// When the writer is behind, Observe drops and counts instead of waiting.
func TestCaptureBusyDrops(t *testing.T) {
	dir := t.TempDir()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c, _ := newCapturer(t, CaptureOptions{Dir: dir, written: func(string) {
		once.Do(func() { close(entered); <-release })
	}})
	c.Observe(callback(0, `{}`, `{}`), nil)
	<-entered // the writer is stuck on the first file; the queue is empty
	for i := range queueSize + 5 {
		c.Observe(callback(i+1, `{}`, `{}`), nil)
	}
	if got := testutil.ToFloat64(c.dropped.WithLabelValues(DroppedBusy)); got != 5 {
		t.Errorf("dropped{busy} = %v; want 5", got)
	}
	close(release)
	c.Close()
	if n := len(formFiles(t, dir)); n != queueSize+1 {
		t.Errorf("%d files; want %d (the first and a full queue)", n, queueSize+1)
	}
}

func TestFileName(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	for _, tc := range []struct{ sid, want string }{
		{"WR0123456789abcdef0123456789abcdef", "20260102T020405.000000006Z-WR0123456789abcdef0123456789abcdef"},
		{"", "20260102T020405.000000006Z-no-reservation"},
		{"../../etc/passwd", "20260102T020405.000000006Z-etcpasswd"},
		{strings.Repeat("A", 100), "20260102T020405.000000006Z-" + strings.Repeat("A", 34)},
	} {
		if got := fileName(at, tc.sid); got != tc.want {
			t.Errorf("fileName(%q) = %q; want %q", tc.sid, got, tc.want)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	c := NewCapturer(CaptureOptions{Dir: b.TempDir(), Max: 1})
	defer c.Close()
	p := callback(1, `{}`, `{}`)
	for b.Loop() {
		c.Observe(p, nil)
	}
}

// eventually polls cond until it holds or ten seconds pass.

func eventually(t *testing.T, what string, cond func() bool) { testkit.Eventually(t, what, cond) }
