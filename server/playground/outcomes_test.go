package playground_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/server"
	"github.com/reservist/reservist/server/playground"
)

// TestPageOutcomes: with Event callbacks on, the rules table and GET /rules show each
// rule's reservation outcomes since the rules were loaded, and a reload starts them afresh.
func TestPageOutcomes(t *testing.T) {
	data, err := os.ReadFile(exampleRules)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	rl, err := reload.New(file, reload.Options{Logger: logger, Settle: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tracker := outcomes.New(outcomes.Options{Rules: rl})
	pg := playground.New(playground.Options{Rules: rl, Logger: logger, Outcomes: tracker})
	srv := httptest.NewServer(server.New(server.Options{Rules: rl, Logger: logger, Playground: pg, Outcomes: tracker, Gatherer: prometheus.NewRegistry()}).Admin())
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	now := time.Now()
	for n, rule := range []string{"voice", "voice", "voice", "chat-and-sms"} {
		tracker.Record(testkit.Sid("WR", uint64(n)), rule, now)
	}
	tracker.Outcome(testkit.Sid("WR", 0), outcomes.Timeout)
	tracker.Outcome(testkit.Sid("WR", 1), outcomes.Timeout)
	tracker.Outcome(testkit.Sid("WR", 2), outcomes.Accepted)
	tracker.Outcome(testkit.Sid("WR", 3), outcomes.Rejected)

	page := get("/")
	voiceRow := row(t, page, "voice")
	for _, want := range []string{`<span class="outcome accepted">accepted 1</span>`, `<span class="outcome timeout">timeout 2</span>`} {
		if !strings.Contains(voiceRow, want) {
			t.Errorf("the voice row lacks %s:\n%s", want, voiceRow)
		}
	}
	if r := row(t, page, "desk-phone"); !strings.Contains(r, "none yet") {
		t.Errorf("a rule without outcomes does not say none yet:\n%s", r)
	}
	var st struct {
		Outcomes map[string]outcomes.Counts `json:"outcomes"`
	}
	if err := json.Unmarshal([]byte(get("/rules")), &st); err != nil {
		t.Fatal(err)
	}
	if got, want := st.Outcomes["voice"], (outcomes.Counts{Accepted: 1, Timeout: 2}); got != want {
		t.Errorf("/rules outcomes of voice = %+v; want %+v", got, want)
	}
	if got, want := st.Outcomes["chat-and-sms"], (outcomes.Counts{Rejected: 1}); got != want {
		t.Errorf("/rules outcomes of chat-and-sms = %+v; want %+v", got, want)
	}

	// A reload: counts since load start again.
	if err := os.WriteFile(file, append(data, "\n# edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if r := row(t, get("/"), "voice"); !strings.Contains(r, "none yet") {
		t.Errorf("after a reload the voice row still shows outcomes:\n%s", r)
	}
}

// TestPageOutcomesOff: without a tracker, the table has no outcomes column.
func TestPageOutcomesOff(t *testing.T) {
	h := newHarness(t)
	resp, err := h.srv.Client().Get(h.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), `class="outcomes"`) {
		t.Error("the page shows outcomes without a tracker")
	}
}

// row is the rules table's row of a rule.
func row(t *testing.T, page, rule string) string {
	t.Helper()
	i := strings.Index(page, `<tr data-rule="`+rule+`">`)
	if i < 0 {
		t.Fatalf("no row for %s", rule)
	}
	j := strings.Index(page[i:], "</tr>")
	return page[i : i+j]
}
