package reload

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/rules"
)

// Rule sets A and B decide the same chat callback differently, so every decision shows
// which one made it; rulesBad misspells the instruction on line 5, column 9.
var (
	rulesA   = fixture("reload-a")
	rulesB   = fixture("reload-b")
	rulesBad = fixture("reload-bad")
)

// fixture reads testdata/rules/NAME.yaml.
func fixture(name string) string {
	b, err := os.ReadFile("../../testdata/rules/" + name + ".yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}

var chatCallback = url.Values{"TaskAttributes": {`{"channel":"chat"}`}, "WorkerAttributes": {`{}`}}

// decide returns what the serving rules answer the chat callback: "accept" (A) or "reject" (B).
func decide(t testing.TB, r *Reloader) string {
	t.Helper()
	d := r.Current().Engine.Decide(chatCallback, time.Time{})
	if d.Rule != "chat" {
		t.Fatalf("Decide(chat) rule = %q (err %v); want chat", d.Rule, d.Err)
	}
	return d.Instruction()
}

// writeFile writes the rules file in place, as `echo >rules.yaml` or some editors do.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes a temporary file beside path and renames it over path, as most editors
// and config-management tools save.
func replaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rules-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

func revision(content string) string {
	set, err := rules.Parse("x", []byte(content))
	if err != nil {
		panic(err)
	}
	return set.Revision
}

// newReloader writes content to rules.yaml in a fresh directory and loads it. The settle
// time defaults to a few milliseconds: these tests write whole files at once.
func newReloader(t testing.TB, content string, opts Options) (*Reloader, string) {
	t.Helper()
	if opts.Settle == 0 {
		opts.Settle = 5 * time.Millisecond
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, content)
	r, err := New(path, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, path
}

// fakeClock is a settable Now; each reading advances it a second so load times differ.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

func TestNewBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rulesBad)
	_, err := New(path, Options{})
	var re rules.Errors
	if !errors.As(err, &re) {
		t.Fatalf("New(bad) = %v; want rules.Errors", err)
	}
	want := path + `:5:9: unknown instruction "acept"`
	if lines := rules.ErrorLines(err); len(lines) != 1 || !strings.HasPrefix(lines[0], want) {
		t.Errorf("rules.ErrorLines(New(bad)) = %q; want one line starting %q", lines, want)
	}
}

func TestNewMissingFile(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "rules.yaml"), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New(missing) = %v; want a not-exist error", err)
	}
}

func TestReloadSIGHUP(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	if got := decide(t, r); got != "accept" {
		t.Fatalf("before reload: chat = %s; want accept", got)
	}
	old := r.Current()
	writeFile(t, path, rulesB)
	if err := r.Reload("SIGHUP"); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := decide(t, r); got != "reject" {
		t.Errorf("after reload: chat = %s; want reject", got)
	}
	if got := old.Engine.Decide(chatCallback, time.Time{}).Instruction(); got != "accept" {
		t.Errorf("rules taken before the reload decide %s; want accept (they must not change)", got)
	}
	s := r.Status()
	if s.Revision != revision(rulesB) || s.Stale || s.LastError != nil || s.Succeeded != 1 || s.Failed != 0 {
		t.Errorf("Status = %+v; want revision B, not stale, 1 success", s)
	}

	// Reloading the same content changes nothing, not even the rules' match counts.
	r.Current().CountMatch("chat")
	if err := r.Reload("SIGHUP"); err != nil {
		t.Fatalf("Reload(same): %v", err)
	}
	if got := r.Current().Matches("chat"); got != 1 {
		t.Errorf("Matches(chat) after reloading the same file = %d; want 1 (rules kept)", got)
	}
}

func TestBadFileKeepsOldRules(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	r, path := newReloader(t, rulesA, Options{Now: clock.Now})
	reg := prometheus.NewPedanticRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	checkMetrics := func(ok int, successAt time.Time, rev string, successes, failures int) {
		t.Helper()
		want := fmt.Sprintf(`
# HELP reservist_rules_info The rules revision serving now (sha256 of rules.yaml); always 1.
# TYPE reservist_rules_info gauge
reservist_rules_info{revision=%q} 1
# HELP reservist_rules_last_reload_success_timestamp_seconds Time of the last successful rules load, in seconds since the epoch.
# TYPE reservist_rules_last_reload_success_timestamp_seconds gauge
reservist_rules_last_reload_success_timestamp_seconds %d
# HELP reservist_rules_last_reload_successful Whether the last rules reload succeeded (1) or failed and older rules still serve (0).
# TYPE reservist_rules_last_reload_successful gauge
reservist_rules_last_reload_successful %d
# HELP reservist_rules_reloads_total Rules reloads tried, by result (success or failure).
# TYPE reservist_rules_reloads_total counter
reservist_rules_reloads_total{result="failure"} %d
reservist_rules_reloads_total{result="success"} %d
`, rev, successAt.Unix(), ok, failures, successes)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Error(err)
		}
	}
	loadedAt := r.Status().LoadedAt
	checkMetrics(1, loadedAt, revision(rulesA), 0, 0)

	writeFile(t, path, rulesBad)
	err := r.Reload("api")
	if _, ok := errors.AsType[rules.Errors](err); !ok {
		t.Fatalf("Reload(bad) = %v; want rules.Errors", err)
	}
	if got := decide(t, r); got != "accept" {
		t.Errorf("after a bad file: chat = %s; want accept (rules A keep serving)", got)
	}
	s := r.Status()
	if !s.Stale || s.Revision != revision(rulesA) || !s.LoadedAt.Equal(loadedAt) {
		t.Errorf("Status after a bad file = %+v; want stale, revision and load time of A", s)
	}
	lines := rules.ErrorLines(s.LastError)
	if len(lines) != 1 || !regexp.MustCompile(`^`+regexp.QuoteMeta(path)+`:5:9: `).MatchString(lines[0]) {
		t.Errorf("rules.ErrorLines(Status().LastError) = %q; want one %s:5:9: line", lines, path)
	}
	checkMetrics(0, loadedAt, revision(rulesA), 0, 1)

	// The watcher would skip this content now; an explicit reload retries and fails again.
	if err := r.Reload("api"); err == nil {
		t.Fatal("second Reload(bad) succeeded")
	}
	checkMetrics(0, loadedAt, revision(rulesA), 0, 2)

	writeFile(t, path, rulesB)
	if err := r.Reload("api"); err != nil {
		t.Fatalf("Reload(good) = %v", err)
	}
	if got := decide(t, r); got != "reject" {
		t.Errorf("after the fix: chat = %s; want reject", got)
	}
	s = r.Status()
	if s.Stale || s.LastError != nil {
		t.Errorf("Status after the fix = %+v; want not stale", s)
	}
	checkMetrics(1, s.LastSuccessAt, revision(rulesB), 1, 2)
}

func TestRevertClearsStale(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	writeFile(t, path, rulesBad)
	if r.Reload("api") == nil {
		t.Fatal("Reload(bad) succeeded")
	}
	writeFile(t, path, rulesA)
	if err := r.Reload("api"); err != nil {
		t.Fatalf("Reload(reverted) = %v", err)
	}
	if s := r.Status(); s.Stale || s.Revision != revision(rulesA) {
		t.Errorf("Status after reverting = %+v; want fresh, revision A", s)
	}
}

// gateChat is a stand-in for the golden cases: the chat callback must be accepted.
func gateChat(e *engine.Engine) error {
	if d := e.Decide(chatCallback, time.Time{}); d.Instruction() != "accept" {
		return fmt.Errorf("1 case failed\ncase chat: rule %s answered %s; want accept", d.Rule, d.Response())
	}
	return nil
}

func TestGate(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{Gate: gateChat})

	writeFile(t, path, rulesB)
	err := r.Reload("api")
	ge, ok := errors.AsType[*GateError](err)
	if !ok {
		t.Fatalf("Reload(B) = %v; want a *GateError", err)
	}
	if ge.Revision != revision(rulesB) {
		t.Errorf("GateError.Revision = %s; want B's %s", ge.Revision, revision(rulesB))
	}
	if got := decide(t, r); got != "accept" {
		t.Errorf("after a refused file: chat = %s; want accept", got)
	}
	s := r.Status()
	if !s.Stale || s.Revision != revision(rulesA) {
		t.Errorf("Status after a refused file = %+v; want stale, revision A", s)
	}
	lines := rules.ErrorLines(s.LastError)
	if len(lines) != 2 || !strings.Contains(lines[0], "refused by the reload gate") ||
		!strings.HasPrefix(lines[1], `case chat: rule chat answered {"instruction":"reject"`) {
		t.Errorf("rules.ErrorLines(refused) = %q; want the gate's reason naming case chat", lines)
	}

	// A different file that passes is accepted.
	passing := strings.Replace(rulesB, "do: reject\n    with:\n      activity_sid: WAfedcba9876543210fedcba9876543210", "do: accept", 1)
	writeFile(t, path, passing)
	if err := r.Reload("api"); err != nil {
		t.Fatalf("Reload(passing) = %v", err)
	}
	if s := r.Status(); s.Stale || s.Revision != revision(passing) {
		t.Errorf("Status after a passing file = %+v; want fresh, the new revision", s)
	}
}

func TestGateFirstLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, rulesB)
	if _, err := New(path, Options{Gate: gateChat}); !errors.As(err, new(*GateError)) {
		t.Errorf("New(B, gate) = %v; want a *GateError", err)
	}
}

func TestMatchCounts(t *testing.T) {
	r, _ := newReloader(t, rulesA, Options{})
	rs := r.Current()
	rs.CountMatch("chat")
	rs.CountMatch("chat")
	rs.CountMatch("default")
	rs.CountMatch("no-such-rule")
	got := rs.MatchCounts()
	want := []RuleMatches{{"chat", 2}, {"default", 1}, {"on_error", 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("MatchCounts() = %v; want %v", got, want)
	}
}

// TestConcurrentSwaps decides callbacks from 8 goroutines while the file is swapped 50 times
// (by rename, with the watcher running and explicit reloads racing it): no decision may
// fail, and each must be exactly what the rule set that made it says.
func TestConcurrentSwaps(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	startWatch(t, r, WatchOptions{Debounce: time.Millisecond})

	want := map[string]string{revision(rulesA): "accept", revision(rulesB): "reject"}
	var byA, byB atomic.Uint64
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				rs := r.Current()
				d := rs.Engine.Decide(chatCallback, time.Time{})
				rs.CountMatch(d.Rule)
				if d.Rule != "chat" || d.Err != nil || d.Revision != rs.Revision() || want[d.Revision] != d.Instruction() {
					errs <- fmt.Errorf("decision %d: rule %q, %s by revision %.12s (err %v); want chat and %q",
						n, d.Rule, d.Instruction(), d.Revision, d.Err, want[d.Revision])
					return
				}
				if d.Instruction() == "accept" {
					byA.Add(1)
				} else {
					byB.Add(1)
				}
				runtime.Gosched() // let the swapper run on a 2-core machine
			}
		})
	}
	for i := range 50 {
		content := rulesA
		if i%2 == 0 {
			content = rulesB
		}
		replaceFile(t, path, content)
		if err := r.Reload("test"); err != nil {
			t.Errorf("swap %d: Reload = %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	t.Logf("%d decisions by rules A, %d by rules B", byA.Load(), byB.Load())
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if s := r.Status(); s.Stale || s.Revision != revision(rulesA) || s.Failed != 0 {
		t.Errorf("Status after 50 swaps = %+v; want revision A, no failures", s)
	}
}

// casesGate is how the serve command is meant to wire --reload-cases: the golden cases run
// against every new rule set, re-read each time so edited cases count.
func casesGate(dir string) func(*engine.Engine) error {
	return func(e *engine.Engine) error {
		cs, err := cases.Load(dir)
		if err != nil {
			return fmt.Errorf("load golden cases: %w", err)
		}
		rep := cases.Run(e, cs, nil)
		if rep.Failed == 0 {
			return nil
		}
		var b strings.Builder
		for _, r := range rep.Results {
			if r.Passed() {
				continue
			}
			if r.Err != nil {
				fmt.Fprintf(&b, "\ncase %s: %v", r.Case.Name, r.Err)
				continue
			}
			fmt.Fprintf(&b, "\ncase %s differs from %s (- want, + got):\n%s", r.Case.Name, r.Case.Golden,
				strings.TrimRight(r.Diff, "\n"))
		}
		return fmt.Errorf("%w%s", rep.Err(), b.String())
	}
}

// TestGoldenCasesGate runs the real case runner as the gate over testdata/cases.
func TestGoldenCasesGate(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{Gate: casesGate("testdata/cases")})
	writeFile(t, path, rulesB)
	err := r.Reload("api")
	if !errors.As(err, new(*GateError)) {
		t.Fatalf("Reload(B) = %v; want a *GateError", err)
	}
	lines := rules.ErrorLines(err)
	t.Logf("refused:\n%s", strings.Join(lines, "\n"))
	if !strings.HasSuffix(lines[0], "1 of 1 cases fail: chat") || len(lines) < 3 ||
		!strings.HasPrefix(lines[1], "case chat differs from testdata/cases/chat.golden.json") {
		t.Errorf("rules.ErrorLines(refused) = %q; want the failing case named, with its diff", lines)
	}
	if got := decide(t, r); got != "accept" {
		t.Errorf("after a refused file: chat = %s; want accept", got)
	}

	writeFile(t, path, rulesA+"# same decisions, new revision\n")
	if err := r.Reload("api"); err != nil {
		t.Errorf("Reload(A') = %v; want it to pass the cases", err)
	}
}
