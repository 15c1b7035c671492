package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
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
	// TaskRouter says the reservation timed out: the rules table shows it under default.
	timedOut := taskroutertest.Event{Type: "reservation.timeout", TaskSid: testkit.Sid("WT", 7), ReservationSid: testkit.Sid("WR", 7)}
	if status, got := s.post(t, "/taskrouter/events", timedOut.Form(testkit.AccountSid)); status != 204 || got != "" {
		t.Fatalf("event = %d %q; want 204", status, got)
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
	if got := text(`tr[data-rule="default"] .outcomes`); got != "timeout 1" {
		t.Errorf("default shows outcomes %q; want timeout 1 (the event sent)", got)
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
	for _, want := range []string{"rules.yaml:34:16: ", "timeout must be an integer from 1 to 999", "rules.yaml:76:9: ", `unknown instruction "acept"`} {
		if !strings.Contains(errorsText, want) {
			t.Errorf("draft errors %q lack %q", errorsText, want)
		}
	}
	// The editor numbers its lines and marks the two lines at fault, with their messages.
	if got := eval(`[...document.querySelectorAll("#draft-gutter .mark.error")].map(m => m.dataset.line).join(",")`); got != "34,76" {
		t.Errorf("the editor marks lines %q; want 34,76", got)
	}
	if got := eval(`document.querySelector('#draft-gutter .mark[data-line="76"]').title`); !strings.Contains(got, `unknown instruction "acept"`) {
		t.Errorf("line 76's marker says %q; want its error", got)
	}
	lines := strings.Count(broken, "\n") + 1
	if got := eval(`String(document.querySelectorAll("#draft-gutter span").length)`); got != fmt.Sprint(lines) {
		t.Errorf("the gutter numbers %s lines; the draft has %d", got, lines)
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
	if got := eval(`[...document.querySelectorAll("#draft-cases tr.case.changed")].map(tr => tr.dataset.case).join(",")`); got != "chat" {
		t.Errorf("flagged cases %q; want chat alone", got)
	}
	// The changed case's difference shows open, as JSON lines (- active, + draft); "changed
	// only" leaves it alone in the table.
	do("show only the changed cases",
		chromedp.Click(chromedp.CSS(`#changed-only`)),
		chromedp.WaitVisible(chromedp.CSS(`#draft-cases tr.diff-row[data-case="chat"] pre.case-diff`)),
	)
	if got := eval(`[...document.querySelectorAll("#draft-cases tr.case")].filter(tr => !tr.hidden).map(tr => tr.dataset.case).join(",")`); got != "chat" {
		t.Errorf("with changed only, the table shows %q; want chat alone", got)
	}
	caseDiff := text(`#draft-cases tr.diff-row[data-case="chat"] pre.case-diff`)
	for _, want := range []string{`-   "rule": "chat-and-sms",`, `+   "rule": "default",`, `    "rest": null`} {
		if !strings.Contains(caseDiff, want) {
			t.Errorf("chat's diff lacks %q:\n%s", want, caseDiff)
		}
	}
	if strings.Contains(caseDiff, "map[") || strings.Contains(caseDiff, "Rule:") {
		t.Errorf("chat's diff is Go syntax, not JSON:\n%s", caseDiff)
	}
	if got := eval(`document.querySelector('#draft-cases tr.diff-row[data-case="chat"] pre.case-diff span.del').textContent`); !strings.HasPrefix(got, "- ") {
		t.Errorf("the diff's removed lines are not marked as such: %q", got)
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

	// A golden case, loaded into the form, decided against its golden file, then saved as a
	// .yaml case that reads back as the same callback.
	vip, err := cases.LoadFile(filepath.Join(casesDir, "vip-voice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := cases.ReadGolden(vip.Golden)
	if err != nil {
		t.Fatal(err)
	}
	do("load a golden case",
		chromedp.WaitVisible(chromedp.CSS(`#case[data-loaded="true"]`)),
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector("#case"); s.value = [...s.options].find(o => o.textContent.startsWith("vip-voice ")).value; s.dispatchEvent(new Event("change")); })()`),
		chromedp.WaitVisible(chromedp.CSS(`#loaded-case`)),
	)
	if filled := eval(`document.querySelector("#form-body").value`); filled != vip.Params.Encode() {
		t.Errorf("loading vip-voice filled %q; want its callback %q", filled, vip.Params.Encode())
	}
	do("decide the golden case",
		chromedp.Click(chromedp.CSS(`#decide`)),
		chromedp.WaitVisible(chromedp.CSS(`#decision .golden-check.pass`)),
	)
	if rule := text(`#decision .decision-rule`); rule != golden.Rule {
		t.Errorf("vip-voice decided by %q; its golden file says %q", rule, golden.Rule)
	}
	downloads := t.TempDir()
	do("save it as a case",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
			})
			return err
		}),
		chromedp.Click(chromedp.CSS(`#save-case`)),
		chromedp.WaitVisible(chromedp.CSS(`#saved-file`)),
	)
	saved := filepath.Join(downloads, "vip-voice.yaml")
	// Chromium creates the file before it has written it: done is when it has content and
	// no partial download is left beside it.
	testkit.Eventually(t, "the saved case downloaded", func() bool {
		partial, _ := filepath.Glob(filepath.Join(downloads, "*.crdownload"))
		fi, err := os.Stat(saved)
		return err == nil && fi.Size() > 0 && len(partial) == 0
	})
	got, err := cases.LoadFile(saved)
	if err != nil {
		t.Fatalf("the saved case does not load: %v", err)
	}
	if len(got.Warnings) > 0 {
		t.Errorf("the saved case has warnings: %v", got.Warnings)
	}
	for k := range vip.Params {
		var a, b any
		if json.Unmarshal([]byte(got.Params.Get(k)), &a) == nil && json.Unmarshal([]byte(vip.Params.Get(k)), &b) == nil {
			if !reflect.DeepEqual(a, b) {
				t.Errorf("saved %s = %s; want %s", k, got.Params.Get(k), vip.Params.Get(k))
			}
		} else if got.Params.Get(k) != vip.Params.Get(k) {
			t.Errorf("saved %s = %q; want %q", k, got.Params.Get(k), vip.Params.Get(k))
		}
	}
	if data, _ := os.ReadFile(saved); !strings.Contains(string(data), "TaskAttributes:\n  ") {
		t.Errorf("the saved case does not write TaskAttributes as a mapping:\n%s", data)
	}
	// The results sit beside the controls that made them.
	if got := eval(`String(document.querySelector("#decision").getBoundingClientRect().left > document.querySelector("#decide").getBoundingClientRect().right)`); got != "true" {
		t.Errorf("the decision is not beside the Decide button")
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
	form := "TaskSid=WT0123456789abcdef0123456789abcdef&Timestamp=2026-03-15T16%3A00%3A00Z&TaskAttributes=%7B%22channel%22%3A%22voice%22%2C%22call_sid%22%3A%22CA0123456789abcdef0123456789abcdef%22%7D&WorkerAttributes=%7B%22contact_uri%22%3A%22client%3Aalice%22%7D"
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

// The page follows the system's colour scheme: dark when it asks for dark.
func TestPlaygroundDarkInBrowser(t *testing.T) {
	ctx := browser(t)
	s := startServe(t, testkit.Read(t, "testdata/example/rules.yaml"), nil)
	background := func(scheme string) string {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
				})
				return err
			}),
			chromedp.Navigate(s.admin+"/"),
			chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)),
		)
		if err != nil {
			t.Fatalf("load the page in %s: %v", scheme, err)
		}
		bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
		if err != nil {
			t.Fatal(err)
		}
		return bg
	}
	if got := background("light"); got != "rgb(255, 255, 255)" {
		t.Errorf("light: the page's background is %s; want white", got)
	}
	if got := background("dark"); got != "rgb(22, 24, 28)" {
		t.Errorf("dark: the page's background is %s; want the dark one", got)
	}
}
