package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservist/reservist/internal/testkit"
)

// moveClock sets the process's clock, wallClock, to what at says until the test ends.
func moveClock(t *testing.T) *atomic.Pointer[time.Time] {
	t.Helper()
	var at atomic.Pointer[time.Time]
	saved := wallClock
	wallClock = func() time.Time { return *at.Load() }
	t.Cleanup(func() { wallClock = saved })
	return &at
}

// TestCasesAtAnyTimeOfDay moves the process's clock to four times of day and, at each, runs
// `reservist test` over every suite under testdata and reloads the hours rules through the
// --reload-cases gate: neither result moves with the clock, because every case is decided
// at its own Timestamp. At each time a callback without a Timestamp is decided by serve as
// that time says, which shows that the clock did move.
func TestCasesAtAnyTimeOfDay(t *testing.T) {
	clock := moveClock(t)
	start := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	clock.Store(&start)

	suites, err := filepath.Glob("testdata/*/rules.yaml")
	if err != nil || len(suites) < 2 {
		t.Fatalf("suites: %v, %v", suites, err)
	}
	hours := testkit.Read(t, "testdata/hours/rules.yaml")
	casesDir, err := filepath.Abs("testdata/hours/cases")
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, hours, nil, "--reload-cases", casesDir)

	// A voice call on Tuesday 10 March 2026 without a Timestamp, decided at each time.
	voice := callback(1, `{"channel":"voice","call_sid":"CA0123456789abcdef0123456789abcdef"}`)
	voice.Del("Timestamp")
	const nightDesk = `{"instruction":"redirect","call_sid":"CA0123456789abcdef0123456789abcdef","url":"https://example.com/twiml/night-desk","accept":true}`
	times := []struct {
		at, answer string
	}{
		{"2026-03-10T04:30:00Z", nightDesk}, // 04:30 in London; 23:30 on Monday in Chicago
		{"2026-03-10T10:00:00Z", `{"instruction":"redirect","call_sid":"CA0123456789abcdef0123456789abcdef","url":"https://example.com/twiml/voicemail?received=2026-03-10T06:00:00-04:00","accept":true}`}, // 05:00 in Chicago, 10:00 in London
		{"2026-03-10T16:00:00Z", `{"instruction":"conference","end_conference_on_customer_exit":true}`},                                                                                                     // 11:00 in Chicago
		{"2026-03-10T23:30:00Z", nightDesk}, // 18:30 in Chicago, 23:30 in London
	}
	var first map[string]string // each suite's report at the first time
	for i, tt := range times {
		at, err := time.Parse(time.RFC3339, tt.at)
		if err != nil {
			t.Fatal(err)
		}
		clock.Store(&at)

		reports := map[string]string{}
		for _, suite := range suites {
			var stdout, stderr strings.Builder
			if err := run(context.Background(), []string{"test", "--rules", suite}, func(string) string { return "" }, &stdout, &stderr); err != nil {
				t.Errorf("at %s: reservist test --rules %s: %v\n%s%s", tt.at, suite, err, stdout.String(), stderr.String())
			}
			if !strings.HasSuffix(stdout.String(), " passed, 0 failed\n") {
				t.Errorf("at %s: reservist test --rules %s says:\n%s", tt.at, suite, stdout.String())
			}
			reports[suite] = stdout.String()
		}
		if first == nil {
			first = reports
		}
		for suite, r := range reports {
			if r != first[suite] {
				t.Errorf("at %s, reservist test --rules %s says\n%s\nand at %s\n%s", tt.at, suite, r, times[0].at, first[suite])
			}
		}

		// A new revision of the rules passes the gate at this time of day too.
		if err := os.WriteFile(s.rules, []byte(hours+fmt.Sprintf("# reloaded at %s\n", tt.at)), 0o644); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", s.admin+"/-/reload", nil)
		if status, body := do(t, req); status != 200 {
			t.Errorf("at %s: the --reload-cases gate refused the rules: %d %s", tt.at, status, body)
		}

		if status, got := s.post(t, "/assignment_callback", voice); status != 200 || got != tt.answer {
			t.Errorf("at %s (clock %d), a callback without a Timestamp = %d %s; want %s", tt.at, i, status, got, tt.answer)
		}
	}
}
