package engine_test

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/internal/testkit"
	"github.com/reservist/reservist/rules"
)

// The expected instants were computed apart from the code under test, with GNU date
// (date -u -d @1773062100) and by hand for the fractions.
func TestParseTime(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // RFC 3339 in UTC, "" for an error
	}{
		{"1773062100", "2026-03-09T13:15:00Z"},
		{"0", "1970-01-01T00:00:00Z"},
		{"1773062100.5", "2026-03-09T13:15:00.5Z"},
		{"1773062100.000000001", "2026-03-09T13:15:00.000000001Z"},
		{"1773062100.1234567899", "2026-03-09T13:15:00.123456789Z"}, // digits past nanoseconds dropped
		{"2026-03-09T09:15:00-04:00", "2026-03-09T13:15:00Z"},
		{"2026-03-09T13:15:00Z", "2026-03-09T13:15:00Z"},
		{"2026-03-09T13:15:00.25+00:00", "2026-03-09T13:15:00.25Z"},
		{"", ""},
		{"now", ""},
		{"-1773062100", ""},
		{"+1773062100", ""},
		{"1.7e9", ""},
		{"1773062100.", ""},
		{".5", ""},
		{"1773062100.5x", ""},
		{" 1773062100", ""},
		{"1234567890123", ""}, // past the year 33658
		{"2026-03-09 09:15:00", ""},
		{"2026-03-09", ""},
		{"2026-03-09T09:15:00", ""}, // no offset: which zone would it be in?
		{strings.Repeat("1", 80), ""},
	} {
		got, err := engine.ParseTime(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseTime(%q) = %v; want an error", tt.in, got)
		case tt.want != "" && err != nil:
			t.Errorf("ParseTime(%q) error %v; want %s", tt.in, err, tt.want)
		case tt.want != "" && got.UTC().Format(time.RFC3339Nano) != tt.want:
			t.Errorf("ParseTime(%q) = %s; want %s", tt.in, got.UTC().Format(time.RFC3339Nano), tt.want)
		}
	}
	if _, err := engine.ParseTime("soon"); err == nil || !strings.Contains(err.Error(), "like 2026-03-09T09:15:00-04:00") {
		t.Errorf("ParseTime(soon) error = %v; want it to show what is right", err)
	}
}

const timeRules = `version: 1
timezone: America/New_York
schedules:
  support:
    timezone: America/Chicago
    hours: {mon-fri: "08:00-18:00"}
rules:
  - name: open
    when: open("support")
    do: call
    with:
      from: "+15005550006"
      url: https://example.com/twiml?at=${ now.Format("2006-01-02T15:04:05-07:00") }
`

func timeEngine(t testing.TB) *engine.Engine {
	t.Helper()
	set, err := rules.Parse("time.yaml", []byte(timeRules))
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(set)
}

// The callback's time is its Timestamp, else the arrival; now is that time in the file's
// timezone.
func TestDecideAt(t *testing.T) {
	e := timeEngine(t)
	arrived := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC) // a Sunday: support is closed
	for _, tt := range []struct {
		name, timestamp  string // "-" leaves it out
		wantAt, wantRule string
	}{
		{"epoch seconds", "1773062100", "2026-03-09T09:15:00-04:00", "open"},
		{"RFC 3339", "2026-03-09T08:15:00-05:00", "2026-03-09T09:15:00-04:00", "open"},
		{"no Timestamp: the arrival", "-", "2026-03-15T08:00:00-04:00", "default"},
		{"an empty one: the arrival", "", "2026-03-15T08:00:00-04:00", "default"},
		{"an unusable one: the arrival", "yesterday", "2026-03-15T08:00:00-04:00", "default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := testkit.Callback(1, `{}`)
			if tt.timestamp == "-" {
				p.Del("Timestamp")
			} else {
				p.Set("Timestamp", tt.timestamp)
			}
			d := e.Decide(p, arrived)
			if got := d.At.Format(time.RFC3339); got != tt.wantAt || d.Rule != tt.wantRule {
				t.Errorf("Decide(Timestamp %q) at %s by %s; want at %s by %s", tt.timestamp, got, d.Rule, tt.wantAt, tt.wantRule)
			}
			if d.Rule == "open" {
				if want := "https://example.com/twiml?at=" + tt.wantAt; d.Params()["CallUrl"] != want {
					t.Errorf("CallUrl = %v; want %s (now in New York time)", d.Params()["CallUrl"], want)
				}
			}
		})
	}
}

// A rule file without a timezone gives now in UTC; one that reads no time still says when
// the callback was.
func TestDecideAtWithoutTime(t *testing.T) {
	set, err := rules.Parse("f.yaml", []byte("version: 1\nrules:\n  - {name: r, when: 'task.age > 1', do: accept}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := testkit.Callback(1, `{}`)
	p.Set("Timestamp", "2026-03-09T09:15:00-04:00")
	d := engine.New(set).Decide(p, time.Time{})
	if got := d.At.Format(time.RFC3339); got != "2026-03-09T13:15:00Z" {
		t.Errorf("At = %s; want 2026-03-09T13:15:00Z", got)
	}
}

// The outbox counts from the callback's time, but not from later than its arrival.
func TestOutboxTimes(t *testing.T) {
	set, err := rules.Parse("f.yaml", []byte("version: 1\nrules:\n  - {name: r, when: 'true', do: accept, delay: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(set)
	arrived := time.Date(2026, 3, 9, 13, 15, 10, 0, time.UTC)
	for _, tt := range []struct {
		timestamp string
		arrived   time.Time
		want      string // Received
	}{
		{"2026-03-09T13:15:00Z", arrived, "2026-03-09T13:15:00Z"},     // made 10s before it arrived
		{"2026-03-09T13:20:00Z", arrived, "2026-03-09T13:15:10Z"},     // a clock ahead: the arrival
		{"2026-03-09T13:20:00Z", time.Time{}, "2026-03-09T13:20:00Z"}, // no arrival: a case
		{"", arrived, "2026-03-09T13:15:10Z"},
	} {
		p := testkit.Callback(1, `{}`)
		p.Set("Timestamp", tt.timestamp)
		a := e.Decide(p, tt.arrived).Outbox(tt.arrived, 120*time.Second)
		received, _ := time.Parse(time.RFC3339, tt.want)
		if !a.Received.Equal(received) || !a.Due.Equal(received.Add(2*time.Second)) || !a.Deadline.Equal(received.Add(120*time.Second)) {
			t.Errorf("Outbox(Timestamp %q, arrived %v) = received %v, due %v, deadline %v; want received %s, due 2s and deadline 120s later",
				tt.timestamp, tt.arrived, a.Received, a.Due, a.Deadline, tt.want)
		}
	}
}

// open() costs a callback no allocation: a rule that tests a schedule allocates as much as
// one with a constant condition. The mean is taken over many runs and compared with half an
// allocation to spare: under the race detector sync.Pool drops a quarter of what is put back,
// so the VM the engine pools is sometimes made afresh, as often for one rule as for the other,
// while an allocation in open() would cost three a callback here.
func TestOpenAllocatesNothing(t *testing.T) {
	const runs = 2000
	mean := func(f func()) float64 {
		f()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			f()
		}
		runtime.ReadMemStats(&after)
		return float64(after.Mallocs-before.Mallocs) / runs
	}
	decide := func(when string) float64 {
		set, err := rules.Parse("f.yaml", []byte("version: 1\nschedules:\n  s:\n    timezone: Europe/London\n    hours: {daily: \"22:00-06:00\"}\n    closed: [2026-12-25]\nrules:\n  - name: r\n    when: '"+when+"'\n    do: accept\n"))
		if err != nil {
			t.Fatal(err)
		}
		e := engine.New(set)
		p := url.Values{"TaskAttributes": {`{}`}, "WorkerAttributes": {`{}`}, "Timestamp": {"1798167600"}} // 03:00 on 25 December 2026
		if d := e.Decide(p, time.Time{}); d.Err != nil {
			t.Fatal(d.Err)
		}
		return mean(func() { e.Decide(p, time.Time{}) })
	}
	withOpen, without := decide(`open("s") && open("s") && !open("s")`), decide(`1 == 2`)
	t.Logf("mean allocations a callback: %.3f with open(), %.3f without", withOpen, without)
	if withOpen > without+0.5 {
		t.Errorf("Decide allocates %v times with open() and %v without; want no more", withOpen, without)
	}
}

// FuzzDecideAt feeds arbitrary callbacks, Timestamps above all, to rules that read the time:
// no panic, valid JSON, the callback's time read as ParseTime reads it (else the arrival),
// and Decide agreeing with Explain.
func FuzzDecideAt(f *testing.F) {
	forms, _ := filepath.Glob("../testdata/hours/cases/*.form")
	for _, path := range forms {
		f.Add(strings.TrimSpace(string(mustRead(f, path))))
	}
	voice := `TaskAttributes={"channel":"voice","call_sid":"CA0123456789abcdef0123456789abcdef"}&WorkerAttributes={}`
	for _, ts := range []string{"1773062100", "1773062100.999999999", "2026-03-08T07:00:00Z", "2026-11-01T06:30:00-05:00", "0", "99999999999", "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "-1", ""} {
		f.Add(voice + "&Timestamp=" + url.QueryEscape(ts))
	}
	e := newEngine(f, string(mustRead(f, "../testdata/hours/rules.yaml")))
	arrived := time.Date(2026, 3, 15, 16, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		params, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		d := e.Decide(params, arrived)
		if !json.Valid(d.Response()) || !json.Valid(d.Answer()) {
			t.Fatalf("invalid JSON: response %q answer %q", d.Response(), d.Answer())
		}
		want := arrived
		if ts, err := engine.Timestamp(params); err == nil {
			want = ts
		}
		if !d.At.Equal(want) {
			t.Fatalf("At = %v; want %v (Timestamp %q)", d.At, want, params.Get("Timestamp"))
		}
		if full := e.Explain(params, arrived); full.Rule != d.Rule || string(full.Response()) != string(d.Response()) {
			t.Fatalf("Decide = %s %s; Explain = %s %s", d.Rule, d.Response(), full.Rule, full.Response())
		}
	})
}
