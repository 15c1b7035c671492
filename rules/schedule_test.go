package rules_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reservist/reservist/rules"
	"gopkg.in/yaml.v3"
)

// scheduleFile holds the schedules the table tests open, each with its hours written again
// in oracleHours in the oracle's own terms: one list of ranges per day of the week.
const scheduleFile = `version: 1
timezone: America/New_York
schedules:
  support:
    timezone: America/Chicago
    hours:
      mon-fri: "08:00-18:00"
      sat: ["09:00-12:00", "13:00-15:00"]
    closed: [2026-12-25, 2027-01-01]
  night:
    timezone: Europe/London
    hours:
      daily: "22:00-06:00"
    closed:
      - 2026-12-25
  weekend:
    timezone: Australia/Sydney
    hours:
      fri-mon: 09:00-17:00
      wed: ["00:00-02:00", "23:00-24:00"]
    closed: ["2026-04-03"]
  day:
    hours:
      thu: "12:00-12:00"
      sun: "01:30-03:30"
rules: []
`

// oracleSchedule is a schedule as the oracle reads it.
type oracleSchedule struct {
	zone   string
	hours  map[time.Weekday][]string
	closed []string
}

var oracleHours = map[string]oracleSchedule{
	"support": {"America/Chicago", map[time.Weekday][]string{
		time.Monday: {"08:00-18:00"}, time.Tuesday: {"08:00-18:00"}, time.Wednesday: {"08:00-18:00"},
		time.Thursday: {"08:00-18:00"}, time.Friday: {"08:00-18:00"},
		time.Saturday: {"09:00-12:00", "13:00-15:00"},
	}, []string{"2026-12-25", "2027-01-01"}},
	"night": {"Europe/London", map[time.Weekday][]string{
		time.Sunday: {"22:00-06:00"}, time.Monday: {"22:00-06:00"}, time.Tuesday: {"22:00-06:00"},
		time.Wednesday: {"22:00-06:00"}, time.Thursday: {"22:00-06:00"}, time.Friday: {"22:00-06:00"},
		time.Saturday: {"22:00-06:00"},
	}, []string{"2026-12-25"}},
	"weekend": {"Australia/Sydney", map[time.Weekday][]string{
		time.Friday: {"09:00-17:00"}, time.Saturday: {"09:00-17:00"}, time.Sunday: {"09:00-17:00"},
		time.Monday: {"09:00-17:00"}, time.Wednesday: {"00:00-02:00", "23:00-24:00"},
	}, []string{"2026-04-03"}},
	"day": {"America/New_York", map[time.Weekday][]string{
		time.Thursday: {"12:00-12:00"}, time.Sunday: {"01:30-03:30"},
	}, nil},
}

// oracleOpen is a deliberately plain second reading of the schedule rules, sharing no code
// with Schedule.Open: it lists, minute by minute, every wall-clock minute each range covers
// on the day it starts and the day after, and looks for the minute t shows on the wall
// clock of the schedule's zone. A closed date drops the ranges that start on it.
func oracleOpen(t *testing.T, s oracleSchedule, at time.Time) bool {
	t.Helper()
	loc, err := time.LoadLocation(s.zone)
	if err != nil {
		t.Fatal(err)
	}
	wall := at.In(loc)
	minute := wall.Hour()*60 + wall.Minute()
	for back := 0; back <= 1; back++ {
		day := time.Date(wall.Year(), wall.Month(), wall.Day()-back, 12, 0, 0, 0, time.UTC)
		closed := false
		for _, c := range s.closed {
			closed = closed || c == day.Format("2006-01-02")
		}
		if closed {
			continue
		}
		for _, r := range s.hours[day.Weekday()] {
			var h1, m1, h2, m2 int
			if _, err := fmt.Sscanf(r, "%d:%d-%d:%d", &h1, &m1, &h2, &m2); err != nil {
				t.Fatalf("oracle range %q: %v", r, err)
			}
			start, end := h1*60+m1, h2*60+m2
			if end <= start {
				end += 24 * 60
			}
			for m := start; m < end; m++ {
				if m/(24*60) == back && m%(24*60) == minute {
					return true
				}
			}
		}
	}
	return false
}

func parseSchedules(t *testing.T) *rules.Set {
	t.Helper()
	set, err := rules.Parse("schedules.yaml", []byte(scheduleFile))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestScheduleOpen checks Open at instants picked by hand around every rule: the edges of
// ranges, both daylight-saving transitions in four zones of both hemispheres, a range that
// wraps the week, 24:00, a range that ends where it starts, the hour that repeats when the
// clocks go back, and the overnight range that runs into a closed day. The instants and
// their wall-clock times were computed with Python's zoneinfo by
// rules/testdata/schedule_instants.py, which prints these rows; the expected results were
// worked out by hand from the hours, and the oracle agrees with each.
func TestScheduleOpen(t *testing.T) {
	set := parseSchedules(t)
	tests := []struct {
		name, schedule string
		utc            string // the instant
		wall           string // what the schedule's zone shows then, by zoneinfo
		want           bool
	}{
		{"support: a second before opening", "support", "2026-03-09T12:59:59Z", "2026-03-09T07:59:59-05:00", false},
		{"support: opening, inclusive", "support", "2026-03-09T13:00:00Z", "2026-03-09T08:00:00-05:00", true},
		{"support: a second before closing", "support", "2026-03-09T22:59:59Z", "2026-03-09T17:59:59-05:00", true},
		{"support: closing, exclusive", "support", "2026-03-09T23:00:00Z", "2026-03-09T18:00:00-05:00", false},
		{"support: 13:30Z on the Friday before spring forward is 07:30 CST", "support", "2026-03-06T13:30:00Z", "2026-03-06T07:30:00-06:00", false},
		{"support: 13:30Z on the Monday after spring forward is 08:30 CDT", "support", "2026-03-09T13:30:00Z", "2026-03-09T08:30:00-05:00", true},
		{"support: 13:30Z on the Friday before falling back is 08:30 CDT", "support", "2026-10-30T13:30:00Z", "2026-10-30T08:30:00-05:00", true},
		{"support: 13:30Z on the Monday after falling back is 07:30 CST", "support", "2026-11-02T13:30:00Z", "2026-11-02T07:30:00-06:00", false},
		{"support: saturday morning", "support", "2026-03-14T16:59:00Z", "2026-03-14T11:59:00-05:00", true},
		{"support: saturday lunch starts", "support", "2026-03-14T17:00:00Z", "2026-03-14T12:00:00-05:00", false},
		{"support: saturday lunch ends", "support", "2026-03-14T18:00:00Z", "2026-03-14T13:00:00-05:00", true},
		{"support: saturday afternoon ends", "support", "2026-03-14T20:00:00Z", "2026-03-14T15:00:00-05:00", false},
		{"support: sunday is not listed", "support", "2026-03-15T15:00:00Z", "2026-03-15T10:00:00-05:00", false},
		{"support: christmas eve, a thursday", "support", "2026-12-24T16:00:00Z", "2026-12-24T10:00:00-06:00", true},
		{"support: christmas day, closed", "support", "2026-12-25T16:00:00Z", "2026-12-25T10:00:00-06:00", false},
		{"support: new year's day, closed", "support", "2027-01-01T18:00:00Z", "2027-01-01T12:00:00-06:00", false},
		{"support: the monday after", "support", "2027-01-04T18:00:00Z", "2027-01-04T12:00:00-06:00", true},
		{"night: a second before it opens", "night", "2026-03-09T21:59:59Z", "2026-03-09T21:59:59+00:00", false},
		{"night: opens at 22:00", "night", "2026-03-09T22:00:00Z", "2026-03-09T22:00:00+00:00", true},
		{"night: after midnight, monday's range", "night", "2026-03-10T05:59:59Z", "2026-03-10T05:59:59+00:00", true},
		{"night: closes at 06:00", "night", "2026-03-10T06:00:00Z", "2026-03-10T06:00:00+00:00", false},
		{"night: christmas eve, before midnight", "night", "2026-12-24T23:30:00Z", "2026-12-24T23:30:00+00:00", true},
		{"night: christmas day after midnight: the range begun the evening before runs on", "night", "2026-12-25T03:00:00Z", "2026-12-25T03:00:00+00:00", true},
		{"night: christmas night: the closed day's range does not start", "night", "2026-12-25T22:30:00Z", "2026-12-25T22:30:00+00:00", false},
		{"night: after midnight into the 26th: the closed day's range does not run on", "night", "2026-12-26T02:00:00Z", "2026-12-26T02:00:00+00:00", false},
		{"night: the 26th in the evening", "night", "2026-12-26T22:30:00Z", "2026-12-26T22:30:00+00:00", true},
		{"night: 05:30Z the day before spring forward is 05:30 GMT", "night", "2026-03-28T05:30:00Z", "2026-03-28T05:30:00+00:00", true},
		{"night: 04:59:59Z on spring forward is 05:59:59 BST", "night", "2026-03-29T04:59:59Z", "2026-03-29T05:59:59+01:00", true},
		{"night: 05:00Z on spring forward is 06:00 BST", "night", "2026-03-29T05:00:00Z", "2026-03-29T06:00:00+01:00", false},
		{"night: 20:59:59Z the evening before falling back is 21:59:59 BST", "night", "2026-10-24T20:59:59Z", "2026-10-24T21:59:59+01:00", false},
		{"night: 21:00Z the evening before falling back is 22:00 BST", "night", "2026-10-24T21:00:00Z", "2026-10-24T22:00:00+01:00", true},
		{"night: 05:59:59Z after falling back is 05:59:59 GMT", "night", "2026-10-25T05:59:59Z", "2026-10-25T05:59:59+00:00", true},
		{"night: 06:00Z after falling back is 06:00 GMT", "night", "2026-10-25T06:00:00Z", "2026-10-25T06:00:00+00:00", false},
		{"weekend: fri-mon takes monday", "weekend", "2026-03-08T23:00:00Z", "2026-03-09T10:00:00+11:00", true},
		{"weekend: tuesday is outside fri-mon", "weekend", "2026-03-09T23:00:00Z", "2026-03-10T10:00:00+11:00", false},
		{"weekend: thursday is outside fri-mon", "weekend", "2026-03-12T05:00:00Z", "2026-03-12T16:00:00+11:00", false},
		{"weekend: friday", "weekend", "2026-03-13T05:59:00Z", "2026-03-13T16:59:00+11:00", true},
		{"weekend: sunday", "weekend", "2026-03-14T22:00:00Z", "2026-03-15T09:00:00+11:00", true},
		{"weekend: good friday, closed", "weekend", "2026-04-02T23:00:00Z", "2026-04-03T10:00:00+11:00", false},
		{"weekend: 22:30Z friday before daylight saving ends is saturday 09:30 AEDT", "weekend", "2026-04-03T22:30:00Z", "2026-04-04T09:30:00+11:00", true},
		{"weekend: 22:30Z saturday after daylight saving ends is sunday 08:30 AEST", "weekend", "2026-04-04T22:30:00Z", "2026-04-05T08:30:00+10:00", false},
		{"weekend: 22:30Z friday before daylight saving starts is saturday 08:30 AEST", "weekend", "2026-10-02T22:30:00Z", "2026-10-03T08:30:00+10:00", false},
		{"weekend: 22:30Z saturday after daylight saving starts is sunday 09:30 AEDT", "weekend", "2026-10-03T22:30:00Z", "2026-10-04T09:30:00+11:00", true},
		{"weekend: wednesday's first range", "weekend", "2026-03-10T14:59:00Z", "2026-03-11T01:59:00+11:00", true},
		{"weekend: wednesday's first range ends", "weekend", "2026-03-10T15:00:00Z", "2026-03-11T02:00:00+11:00", false},
		{"weekend: wednesday's last range", "weekend", "2026-03-11T12:00:00Z", "2026-03-11T23:00:00+11:00", true},
		{"weekend: wednesday's last second", "weekend", "2026-03-11T12:59:59Z", "2026-03-11T23:59:59+11:00", true},
		{"weekend: 24:00 ends the day", "weekend", "2026-03-11T13:00:00Z", "2026-03-12T00:00:00+11:00", false},
		{"day: a minute before a range that ends where it starts", "day", "2026-03-12T15:59:00Z", "2026-03-12T11:59:00-04:00", false},
		{"day: noon thursday opens 24 hours", "day", "2026-03-12T16:00:00Z", "2026-03-12T12:00:00-04:00", true},
		{"day: friday morning is thursday's range", "day", "2026-03-13T15:59:59Z", "2026-03-13T11:59:59-04:00", true},
		{"day: noon friday ends it", "day", "2026-03-13T16:00:00Z", "2026-03-13T12:00:00-04:00", false},
		{"day: 01:30 EST on spring forward", "day", "2026-03-08T06:30:00Z", "2026-03-08T01:30:00-05:00", true},
		{"day: 01:59:59 EST on spring forward", "day", "2026-03-08T06:59:59Z", "2026-03-08T01:59:59-05:00", true},
		{"day: 03:00 EDT, a second later, is still before 03:30", "day", "2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00", true},
		{"day: 03:30 EDT ends the range after an hour", "day", "2026-03-08T07:30:00Z", "2026-03-08T03:30:00-04:00", false},
		{"day: 01:30 EDT on falling back", "day", "2026-11-01T05:30:00Z", "2026-11-01T01:30:00-04:00", true},
		{"day: 01:00 EST, the hour again, is before 01:30", "day", "2026-11-01T06:00:00Z", "2026-11-01T01:00:00-05:00", false},
		{"day: 01:30 EST, the second time", "day", "2026-11-01T06:30:00Z", "2026-11-01T01:30:00-05:00", true},
		{"day: 03:29:59 EST", "day", "2026-11-01T08:29:59Z", "2026-11-01T03:29:59-05:00", true},
		{"day: 03:30 EST ends it", "day", "2026-11-01T08:30:00Z", "2026-11-01T03:30:00-05:00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339, tt.utc)
			if err != nil {
				t.Fatal(err)
			}
			s := set.Schedule(tt.schedule)
			// Go's reading of the tz database agrees with Python's.
			if got := at.In(s.Location).Format("2006-01-02T15:04:05-07:00"); got != tt.wall {
				t.Fatalf("%s in %s = %s; zoneinfo says %s", tt.utc, s.Location, got, tt.wall)
			}
			if got := oracleOpen(t, oracleHours[tt.schedule], at); got != tt.want {
				t.Fatalf("the oracle says %v at %s; the table says %v: one of them is wrong", got, tt.wall, tt.want)
			}
			if got := s.Open(at); got != tt.want {
				t.Errorf("%s.Open(%s, %s there) = %v; want %v", tt.schedule, tt.utc, tt.wall, got, tt.want)
			}
		})
	}
}

// TestScheduleOpenSweep compares Open with the oracle every 7 minutes and 31 seconds through
// two weeks around each daylight-saving transition of the schedules' zones in 2026, the
// holidays, and the turn of the year, so that no wall-clock time of those days is left
// unchecked by the table's choice of instants.
func TestScheduleOpenSweep(t *testing.T) {
	set := parseSchedules(t)
	windows := []string{
		"2026-03-01T00:00:00Z", // the United States spring forward, 8 March
		"2026-03-22T00:00:00Z", // Europe, 29 March
		"2026-03-29T00:00:00Z", // Sydney falls back, 5 April; Good Friday, 3 April
		"2026-09-27T00:00:00Z", // Sydney springs forward, 4 October
		"2026-10-18T00:00:00Z", // Europe falls back, 25 October
		"2026-10-25T00:00:00Z", // the United States, 1 November
		"2026-12-20T00:00:00Z", // Christmas and the new year
	}
	const step = 7*time.Minute + 31*time.Second
	checked := 0
	for _, w := range windows {
		from, err := time.Parse(time.RFC3339, w)
		if err != nil {
			t.Fatal(err)
		}
		for at := from; at.Before(from.Add(14 * 24 * time.Hour)); at = at.Add(step) {
			for name, o := range oracleHours {
				s := set.Schedule(name)
				if got, want := s.Open(at), oracleOpen(t, o, at); got != want {
					t.Fatalf("%s.Open(%s, %s there) = %v; the oracle says %v", name, at.Format(time.RFC3339), at.In(s.Location).Format(time.RFC3339), got, want)
				}
				checked++
			}
		}
	}
	t.Logf("%d instants checked", checked)
}

// TestScheduleZones: a schedule is in its own zone, else in the file's, else in UTC.
func TestScheduleZones(t *testing.T) {
	set := parseSchedules(t)
	for name, want := range map[string]string{"support": "America/Chicago", "night": "Europe/London", "day": "America/New_York"} {
		if got := set.Schedule(name).Location.String(); got != want {
			t.Errorf("schedule %s is in %s; want %s", name, got, want)
		}
	}
	if got := set.Timezone.String(); got != "America/New_York" {
		t.Errorf("Timezone = %s; want America/New_York", got)
	}
	plain, err := rules.Parse("f.yaml", []byte("version: 1\nschedules:\n  s:\n    hours: {daily: \"09:00-17:00\"}\nrules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Timezone != time.UTC || plain.Schedule("s").Location != time.UTC {
		t.Errorf("without timezone: file in %v, schedule in %v; want UTC for both", plain.Timezone, plain.Schedule("s").Location)
	}
}

// TestReadsTime: a file reads the time when an expression names now, open or the whole
// environment; then its cases must say their time.
func TestReadsTime(t *testing.T) {
	for _, tt := range []struct {
		when, with string
		want       bool
	}{
		{`task.age > 3`, ``, false},
		{`now.Hour() >= 9`, ``, true},
		{`open("s")`, ``, true},
		{`$env.task.age > 3`, ``, true},
		{`true`, `${ now.Format("15:04") }`, true},
		{`date("2026-01-01") > date("2025-01-01")`, ``, false},
	} {
		src := "version: 1\nschedules:\n  s:\n    hours: {daily: \"09:00-17:00\"}\nrules:\n  - name: r\n    when: '" + tt.when + "'\n"
		if tt.with != "" {
			src += "    do: call\n    with:\n      from: \"+15005550006\"\n      url: 'https://example.com/" + tt.with + "'\n"
		} else {
			src += "    do: accept\n"
		}
		set, err := rules.Parse("f.yaml", []byte(src))
		if err != nil {
			t.Fatalf("Parse(when %s, with %s): %v", tt.when, tt.with, err)
		}
		if set.ReadsTime != tt.want {
			t.Errorf("Parse(when %s, with %s).ReadsTime = %v; want %v", tt.when, tt.with, set.ReadsTime, tt.want)
		}
	}
}

// Open allocates nothing: it runs for every open() of every callback.
func TestScheduleOpenAllocates(t *testing.T) {
	s := parseSchedules(t).Schedule("night")
	at := time.Date(2026, 12, 25, 3, 0, 0, 0, time.UTC)
	if n := testing.AllocsPerRun(100, func() { s.Open(at) }); n != 0 {
		t.Errorf("Open allocates %v times; want 0", n)
	}
}

func BenchmarkScheduleOpen(b *testing.B) {
	set, err := rules.Parse("schedules.yaml", []byte(scheduleFile))
	if err != nil {
		b.Fatal(err)
	}
	s := set.Schedule("support")
	at := time.Date(2026, 3, 9, 15, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		s.Open(at)
	}
}

// FuzzSchedule feeds arbitrary day keys, hours, closed dates and zones to the parser: it
// must not panic, must give a set or located errors, and a schedule it takes must be open
// exactly when the oracle says, at the instant given and around it.
func FuzzSchedule(f *testing.F) {
	seeds := []struct {
		key, hours, closed, zone string
		at                       int64
	}{
		{"mon-fri", `"08:00-18:00"`, "[2026-12-25]", "America/Chicago", 1773062100},
		{"sat", `["09:00-12:00", "13:00-15:00"]`, "[]", "UTC", 1773500000},
		{"daily", `"22:00-06:00"`, "[2026-12-25, 2027-01-01]", "Europe/London", 1798170000},
		{"fri-mon", `"00:00-24:00"`, "~", "Australia/Sydney", 1775340000},
		{"thu", `"12:00-12:00"`, `["2026-03-12"]`, "America/New_York", 1773331200},
		{"sun", `"01:30-03:30"`, "[]", "America/New_York", 1772951400},
		{"wed-wed", `"8-18"`, "[2026-02-30]", "America/New_Yrok", 0},
		{"Monday", `[]`, "2026-12-25", "Local", -1},
		{"mon", `{a: 1}`, `[{}]`, "", 1 << 40},
		{"tue", `"23:59-00:00"`, "[9999-12-31]", "Etc/GMT-14", 253402300799},
	}
	for _, s := range seeds {
		f.Add(s.key, s.hours, s.closed, s.zone, s.at)
	}
	f.Fuzz(func(t *testing.T, key, hours, closed, zone string, at int64) {
		src := fmt.Sprintf("version: 1\nschedules:\n  s:\n    timezone: %q\n    hours:\n      %q: %s\n    closed: %s\nrules:\n  - name: r\n    when: open(\"s\")\n    do: accept\n", zone, key, hours, closed)
		set, err := rules.Parse("f.yaml", []byte(src))
		if (set == nil) == (err == nil) {
			t.Fatalf("Parse returned set %v and error %v; want exactly one", set != nil, err)
		}
		if err != nil {
			lines := strings.Count(src, "\n") + 2
			for _, d := range err.(rules.Errors) {
				if d.Pos.Line < 1 || d.Pos.Line > lines || d.Pos.Col < 1 {
					t.Fatalf("diagnostic outside the file (%d lines): %s", lines, d)
				}
			}
			return
		}
		o, ok := oracleFromFuzz(key, hours, closed, zone)
		if !ok {
			return // the YAML said more than the oracle reads (anchors, tags): only no panic
		}
		s := set.Schedule("s")
		base := time.Unix(at%(1<<36), 0) // years within the tz database's reach
		for _, d := range []time.Duration{0, time.Minute, time.Hour, 12 * time.Hour, 24 * time.Hour, 36 * time.Hour, 5 * 24 * time.Hour} {
			for _, sign := range []time.Duration{1, -1} {
				at := base.Add(sign * d)
				if got, want := s.Open(at), oracleOpen(t, o, at); got != want {
					t.Fatalf("Open(%s, %s there) = %v; the oracle says %v, for\n%s", at.UTC().Format(time.RFC3339), at.In(s.Location).Format(time.RFC3339), got, want, src)
				}
			}
		}
	})
}

// oracleFromFuzz reads a fuzzed schedule the plain way: which days its key names, its ranges
// as strings, its dates. It trusts that Parse accepted them.
func oracleFromFuzz(key, hours, closed, zone string) (oracleSchedule, bool) {
	o := oracleSchedule{zone: zone, hours: map[time.Weekday][]string{}}
	var ranges []string
	var v any
	if err := yaml.Unmarshal([]byte(hours), &v); err != nil {
		return o, false
	}
	switch x := v.(type) {
	case string:
		ranges = []string{x}
	case []any:
		for _, r := range x {
			s, ok := r.(string)
			if !ok {
				return o, false
			}
			ranges = append(ranges, s)
		}
	default:
		return o, false
	}
	names := []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	index := func(n string) int {
		for i, d := range names {
			if d == n {
				return i
			}
		}
		return -1
	}
	var days []int
	if a, b, isRange := strings.Cut(key, "-"); key == "daily" {
		days = []int{0, 1, 2, 3, 4, 5, 6}
	} else if !isRange {
		days = []int{index(key)}
	} else {
		for d := index(a); ; d = (d + 1) % 7 {
			days = append(days, d)
			if d == index(b) {
				break
			}
		}
	}
	for _, d := range days {
		o.hours[time.Weekday(d)] = ranges
	}
	var c any
	if err := yaml.Unmarshal([]byte(closed), &c); err != nil {
		return o, false
	}
	if list, ok := c.([]any); ok {
		for _, d := range list {
			switch x := d.(type) {
			case string:
				o.closed = append(o.closed, x)
			case time.Time:
				o.closed = append(o.closed, x.Format("2006-01-02"))
			default:
				return o, false
			}
		}
	}
	return o, true
}
