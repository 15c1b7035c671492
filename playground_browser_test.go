package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/internal/testkit"
)

// chromium finds the browser for the playground test: CHROME_PATH, else Debian's package.
// Without one the test is skipped, except in CI (CI=true), where .ci/run installs it and
// its absence is a failure rather than a test that silently never runs.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROME_PATH"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const msg = "no Chromium at $CHROME_PATH or /usr/bin/chromium: install Debian's chromium package (.ci/run does) to run the playground's browser test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts headless Chromium for one test, with the flags this machine's closed
// network and root user need.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	profile := t.TempDir() // removed after the browser has stopped: cleanups run last-in first-out
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1200, 2000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	// Generous for a loaded two-core machine; a passing run takes a few seconds.
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

// The playground in a real browser against the real server: decide a pasted callback,
// see a broken draft's errors, see the golden case a draft would change, and replay a
// recent callback.
func TestPlaygroundInBrowser(t *testing.T) {
	ctx := browser(t)
	began := time.Now()

	casesDir, err := filepath.Abs("testdata/example/cases")
	if err != nil {
		t.Fatal(err)
	}
	example := testkit.Read(t, "testdata/example/rules.yaml")
	s := startServe(t, example, nil, "--reload-cases", casesDir)
	if status, got := s.post(t, "/assignment_callback", callback(7, `{"channel":"email"}`)); status != 200 || got != `{}` {
		t.Fatalf("callback = %d %s", status, got)
	}

	// Any script error on the page fails the test.
	var mu sync.Mutex
	var jsErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			mu.Lock()
			jsErrors = append(jsErrors, msg)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return s
	}

	// The page: active rules with their match counts.
	do("load the page",
		chromedp.Navigate(s.admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)),
	)
	if got := text(`tr[data-rule="default"] .matches`); got != "1" {
		t.Errorf("default shows %q matches; want 1 (the callback sent)", got)
	}

	// Decide a pasted callback.
	form := "TaskSid=WT0123456789abcdef0123456789abcdef&TaskAttributes=%7B%22channel%22%3A%22chat%22%7D&WorkerAttributes=%7B%22contact_uri%22%3A%22client%3Aalice%22%7D"
	do("decide a pasted callback",
		chromedp.SetValue(chromedp.CSS(`#form-body`), form),
		chromedp.Click(chromedp.CSS(`#decide`)),
		chromedp.WaitVisible(chromedp.CSS(`#decision .decision-rule`)),
	)
	rule, answer, trace := text(`#decision .decision-rule`), text(`#decision .decision-answer`), text(`#decision .trace`)
	if rule != "chat-and-sms" || answer != `{"instruction":"accept"}` {
		t.Errorf("decided %q answering %q; want chat-and-sms answering {\"instruction\":\"accept\"}", rule, answer)
	}
	if !strings.Contains(trace, "voice no") || !strings.Contains(trace, "chat-and-sms matched") {
		t.Errorf("trace %q; want every rule tried up to chat-and-sms, matched", trace)
	}

	// A broken draft: its FILE:LINE:COL errors.
	broken := strings.Replace(example, "do: accept\n", "do: acept\n", 1)
	broken = strings.Replace(broken, "timeout: 20", "timeout: 2000", 1)
	do("try a broken draft",
		chromedp.SetValue(chromedp.CSS(`#draft-rules`), broken),
		chromedp.Click(chromedp.CSS(`#try-draft`)),
		chromedp.WaitVisible(chromedp.CSS(`#draft-errors li`)),
	)
	errorsText := text(`#draft-errors`)
	for _, want := range []string{"rules.yaml:33:16: ", "timeout must be an integer from 1 to 999", "rules.yaml:75:9: ", `unknown instruction "acept"`} {
		if !strings.Contains(errorsText, want) {
			t.Errorf("draft errors %q lack %q", errorsText, want)
		}
	}

	// A draft that changes one golden case's decision: that case is flagged, and so is the
	// pasted callback, which it decides differently too.
	draft := strings.Replace(example, `when: task.attributes.channel in ["chat", "sms"]`, `when: task.attributes.channel in ["sms"]`, 1)
	if draft == example {
		t.Fatal("the example rules changed; update this test's edit")
	}
	do("try a draft that changes a case",
		chromedp.SetValue(chromedp.CSS(`#draft-rules`), draft),
		chromedp.Click(chromedp.CSS(`#try-draft`)),
		chromedp.WaitVisible(chromedp.CSS(`#draft-cases tr.changed`)),
	)
	if got := eval(`[...document.querySelectorAll("#draft-cases tr.changed")].map(tr => tr.dataset.case).join(",")`); got != "chat" {
		t.Errorf("flagged cases %q; want chat alone", got)
	}
	all, err := cases.Load(casesDir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("1 of %d golden cases would be decided differently", len(all))
	if summary := text(`#draft-summary`); !strings.Contains(summary, want) || !strings.Contains(summary, "1 fails its golden file") {
		t.Errorf("summary %q; want it to say %q and that one case fails its golden file", summary, want)
	}
	if got := text(`#draft-callback .side-by-side.changed .decision:last-child .decision-rule`); got != "default" {
		t.Errorf("the draft decides the pasted callback with %q; want default", got)
	}
	if got := eval(`String(document.querySelector("#draft-errors").hidden)`); got != "true" {
		t.Errorf("the broken draft's errors still show after a valid draft")
	}

	// The callback received, picked from the recent list, fills the form and is decided as
	// it was when it came in.
	do("replay a recent callback",
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector("#recent"); s.selectedIndex = 1; s.dispatchEvent(new Event("change")); })()`),
		chromedp.Click(chromedp.CSS(`#decide`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#decision .decision-rule").textContent === "default"`),
	)
	if filled := eval(`document.querySelector("#form-body").value`); !strings.Contains(filled, "ReservationSid=WR") || !strings.Contains(filled, "%22email%22") {
		t.Errorf("picking the recent callback filled %q; want its form body", filled)
	}

	// The page decided and tried drafts; none of that counts as callbacks or swaps rules.
	do("reload the page",
		chromedp.Navigate(s.admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)),
	)
	if got := text(`tr[data-rule="default"] .matches`); got != "1" {
		t.Errorf("after using the playground default shows %q matches; want still 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(jsErrors) > 0 {
		t.Errorf("script errors on the page: %v", jsErrors)
	}
	t.Logf("browser test took %v", time.Since(began).Round(time.Millisecond))
}

// The playground's time field decides one callback at two times, in a real browser: two
// different rules, each decision saying the time it was made at.
func TestPlaygroundTimeInBrowser(t *testing.T) {
	ctx := browser(t)
	s := startServe(t, testkit.Read(t, "testdata/hours/rules.yaml"), nil)
	var mu sync.Mutex
	var jsErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			jsErrors = append(jsErrors, e.ExceptionDetails.Text)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	do("load the page",
		chromedp.Navigate(s.admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)),
	)
	// A voice call whose Timestamp says Sunday afternoon: both desks are closed then.
	form := "TaskSid=WT0123456789abcdef0123456789abcdef&Timestamp=2026-03-15T16%3A00%3A00Z&TaskAttributes=%7B%22channel%22%3A%22voice%22%2C%22call_sid%22%3A%22CA0123456789abcdef0123456789abcdef%22%7D&WorkerAttributes=%7B%7D"
	for _, tt := range []struct{ at, rule, shown string }{
		{"", "after-hours-voice", "2026-03-15T12:00:00-04:00 (the callback's Timestamp)"},
		{"2026-03-10T09:00:00-05:00", "support-voice", "2026-03-10T10:00:00-04:00 (the time given)"},
		{"1773185400", "night-desk-voice", "2026-03-10T19:30:00-04:00 (the time given)"},
	} {
		do("decide at "+tt.at,
			chromedp.SetValue(chromedp.CSS(`#form-body`), form),
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector("#callback-at").value = %q`, tt.at)),
			chromedp.Click(chromedp.CSS(`#decide`)),
			chromedp.Poll[chromedp.Void](fmt.Sprintf(`(document.querySelector("#decision .decision-rule") || {}).textContent === %q`, tt.rule)),
		)
		if got := text(`#decision .decision-at`); !strings.Contains(got, tt.shown) {
			t.Errorf("decided at %q, the page says %q; want it to show %q", tt.at, got, tt.shown)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(jsErrors) > 0 {
		t.Errorf("script errors on the page: %v", jsErrors)
	}
}
