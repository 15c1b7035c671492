package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Schedule is one entry of `schedules`: opening hours by day of the week in a time zone,
// less whole closed dates (docs/rules.md, "Time"). It is immutable; Open is safe for
// concurrent use and allocates nothing.
type Schedule struct {
	Name     string
	Pos      Pos            // the schedule's name in the file
	Location *time.Location // the zone its hours and dates are in
	// spans holds, by time.Weekday, the ranges that start on that day, in seconds from its
	// midnight by the wall clock; a range that runs into the next day ends past secondsPerDay.
	spans [7][]span
	// closed holds the closed dates as days since 1970-01-01 (by the calendar, in the
	// schedule's zone).
	closed map[int64]bool
}

// span is one opening range: from start, inclusive, to end, exclusive.
type span struct{ start, end int64 }

const secondsPerDay = 24 * 60 * 60

// Open reports whether the schedule is open at t: whether the wall clock in its zone at t
// lies in a range of that day, or in a range of the day before that runs past midnight, and
// the day the range starts on is not closed.
//
// The wall clock is t's Unix time plus the zone's offset at t, so that daylight-saving time
// is whatever the tz database says; in the hour that repeats when clocks go back, a time of
// day is open each time the clock shows it.
func (s *Schedule) Open(t time.Time) bool {
	_, offset := t.In(s.Location).Zone()
	local := t.Unix() + int64(offset)
	day := floorDiv(local, secondsPerDay)
	sec := local - day*secondsPerDay
	wd := weekday(day)
	if !s.closed[day] {
		for _, r := range s.spans[wd] {
			if sec >= r.start && sec < r.end {
				return true
			}
		}
	}
	if !s.closed[day-1] {
		for _, r := range s.spans[(wd+6)%7] {
			if sec+secondsPerDay < r.end {
				return true
			}
		}
	}
	return false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// weekday is the day of the week of a day since 1970-01-01, a Thursday.
func weekday(day int64) time.Weekday {
	return time.Weekday(((day % 7) + 7 + int64(time.Thursday)) % 7)
}

// Days of the week as day keys name them, in time.Weekday order.
var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// daily is the day key for every day of the week.
const daily = "daily"

var (
	rangePattern = regexp.MustCompile(`^([01][0-9]|2[0-4]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$`)
	datePattern  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// DayKeys lists every key hours takes: each day, every range of two different days in
// week order (wrapping past sun), and daily.
func DayKeys() []string {
	keys := slices.Clone(dayNames[:])
	for a := range dayNames {
		for b := range dayNames {
			if a != b {
				keys = append(keys, dayNames[a]+"-"+dayNames[b])
			}
		}
	}
	return append(keys, daily)
}

// RangePattern is the regular expression a range of hours must match (besides 24:00
// ending it only).
func RangePattern() string {
	return `^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$`
}

// DatePattern is the regular expression a closed date must match (besides being a day of
// the calendar).
func DatePattern() string { return `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$` }

// ZoneNames lists the time zones a timezone may name, sorted.
func ZoneNames() []string { return slices.Clone(zoneNames) }

// parseZone reads a timezone value. where names its owner in messages, "" for the file.
func (p *parser) parseZone(e entry, where string) *time.Location {
	if where != "" {
		where += ": "
	}
	if e.value.Kind != yaml.ScalarNode || e.value.Tag == "!!null" {
		p.errorf(at(e.value), "%stimezone must be a zone name, not %s; %s", where, nodeText(e.value), zoneExamples)
		return nil
	}
	loc, msg := loadZone(e.value.Value)
	if msg != "" {
		p.errorf(at(e.value), "%stimezone: %s", where, msg)
	}
	return loc
}

// parseSchedules reads `schedules`: a mapping of names to schedules.
func (p *parser) parseSchedules(n *yaml.Node, zone *time.Location) []*Schedule {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(at(n), "schedules must be a mapping of NAME: {hours: …}, not %s", nodeText(n))
		return nil
	}
	var out []*Schedule
	seen := map[string]Pos{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		name := k.Value
		if k.Kind != yaml.ScalarNode || !namePattern.MatchString(name) {
			p.errorf(at(k), "schedule name %s must be lower-case letters, digits and - (like support or night-desk), starting with a letter or digit", nodeText(k))
			continue
		}
		if first, dup := seen[name]; dup {
			p.errorf(at(k), "schedule %s is defined twice (first at line %d)", name, first.Line)
			continue
		}
		seen[name] = at(k)
		// The schedule is recorded even when it has errors, so that open("NAME") is not
		// reported as unknown besides.
		out = append(out, p.parseSchedule(name, k, v, zone))
	}
	return out
}

// parseSchedule reads one schedule; the file's zone is its default.
func (p *parser) parseSchedule(name string, k, n *yaml.Node, zone *time.Location) *Schedule {
	where := "schedule " + name
	s := &Schedule{Name: name, Pos: at(k), Location: zone}
	m, ok := p.mapping(n, where, scheduleKeys)
	if !ok {
		return s
	}
	if e, ok := m["timezone"]; ok {
		if loc := p.parseZone(e, where); loc != nil {
			s.Location = loc
		}
	}
	if e, ok := m["hours"]; !ok {
		p.errorf(at(n), "%s has no hours; add hours: with days and ranges, like mon-fri: \"08:00-18:00\"", where)
	} else {
		p.parseHours(s, e.value, where)
	}
	if e, ok := m["closed"]; ok {
		p.parseClosed(s, e.value, where)
	}
	return s
}

// parseHours reads a schedule's hours: day keys, each with one range or a list of them.
func (p *parser) parseHours(s *Schedule, n *yaml.Node, where string) {
	if n.Kind != yaml.MappingNode {
		p.errorf(at(n), "%s: hours must be a mapping of days to ranges, like mon-fri: \"08:00-18:00\", not %s", where, nodeText(n))
		return
	}
	var given [7]*yaml.Node // the key that named each day
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		days, ok := p.dayKey(k, where)
		if !ok {
			continue
		}
		twice := false
		for _, d := range days {
			if first := given[d]; first != nil {
				what := fmt.Sprintf("%s is in %s (line %d) and again in %s", dayNames[d], first.Value, first.Line, k.Value)
				if first.Value == k.Value {
					what = fmt.Sprintf("%s appears twice (first at line %d)", k.Value, first.Line)
				}
				p.errorf(at(k), "%s: hours: %s; a day may be given in only one key", where, what)
				twice = true
				break
			}
		}
		if twice {
			continue
		}
		for _, d := range days {
			given[d] = k
		}
		spans := p.parseRanges(v, where+": hours: "+k.Value)
		for _, d := range days {
			s.spans[d] = spans
		}
	}
}

// dayKey reads a key of hours: the days it names, in week order from its first.
func (p *parser) dayKey(k *yaml.Node, where string) ([]time.Weekday, bool) {
	key := k.Value
	if k.Kind == yaml.ScalarNode {
		if key == daily {
			return []time.Weekday{0, 1, 2, 3, 4, 5, 6}, true
		}
		from, to, isRange := strings.Cut(key, "-")
		a, b := dayIndex(from), dayIndex(to)
		switch {
		case !isRange && a >= 0:
			return []time.Weekday{time.Weekday(a)}, true
		case isRange && a >= 0 && b >= 0 && a != b:
			var days []time.Weekday
			for d := a; ; d = (d + 1) % 7 {
				days = append(days, time.Weekday(d))
				if d == b {
					return days, true
				}
			}
		case isRange && a >= 0 && a == b:
			p.errorf(at(k), "%s: hours: %s names one day; write %s", where, key, from)
			return nil, false
		}
	}
	p.errorf(at(k), "%s: hours: unknown day %s; a day key is mon, tue, wed, thu, fri, sat or sun, a range of them like mon-fri or fri-mon, or daily%s", where, nodeText(k), suggestDay(key))
	return nil, false
}

// dayIndex is the time.Weekday a day name means, or -1.
func dayIndex(name string) int {
	for i, d := range dayNames {
		if d == name {
			return i
		}
	}
	return -1
}

// suggestDay says which day key a wrong one likely means: Monday and MON mean mon,
// weekdays mon-fri.
func suggestDay(key string) string {
	short := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		if len(s) >= 3 {
			if i := dayIndex(s[:3]); i >= 0 && strings.HasPrefix(strings.ToLower(time.Weekday(i).String()), s) {
				return s[:3]
			}
		}
		return s
	}
	k := strings.ToLower(key)
	switch k {
	case "weekdays", "workdays", "weekday":
		return " (did you mean mon-fri?)"
	case "weekend", "weekends":
		return " (did you mean sat-sun?)"
	case "everyday", "every day", "all", "always":
		return " (did you mean daily?)"
	}
	from, to, isRange := strings.Cut(key, "-")
	guess := short(from)
	if isRange {
		guess += "-" + short(to)
	}
	if guess != key && slices.Contains(DayKeys(), guess) {
		return fmt.Sprintf(" (did you mean %s?)", guess)
	}
	return suggest(key, DayKeys())
}

// parseRanges reads the value of a day key: one "HH:MM-HH:MM" or a list of them.
func (p *parser) parseRanges(n *yaml.Node, where string) []span {
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			items = []*yaml.Node{n}
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			items = append(items, resolve(item))
		}
		if len(items) == 0 {
			p.errorf(at(n), "%s: the list of ranges is empty; give a range like \"08:00-18:00\", or leave the day out to keep it closed", where)
			return nil
		}
	}
	if items == nil {
		p.errorf(at(n), "%s must be a range like \"08:00-18:00\" or a list of them, not %s", where, nodeText(n))
		return nil
	}
	var out []span
	for _, item := range items {
		if r, ok := p.parseRange(item, where); ok {
			out = append(out, r)
		}
	}
	return out
}

// parseRange reads one "HH:MM-HH:MM". An end at or before the start is on the next day.
func (p *parser) parseRange(n *yaml.Node, where string) (span, bool) {
	sm := rangePattern.FindStringSubmatch(n.Value)
	if n.Kind != yaml.ScalarNode || sm == nil {
		p.errorf(at(n), "%s: %s is not a range of hours; write \"HH:MM-HH:MM\", like \"08:00-18:00\" or \"22:00-06:00\"", where, nodeText(n))
		return span{}, false
	}
	clock := func(h, m string) int64 {
		return (int64(h[0]-'0')*10+int64(h[1]-'0'))*3600 + (int64(m[0]-'0')*10+int64(m[1]-'0'))*60
	}
	start, end := clock(sm[1], sm[2]), clock(sm[3], sm[4])
	switch {
	case start >= secondsPerDay:
		p.errorf(at(n), "%s: %q starts at %s:%s; a range starts at 00:00 to 23:59 (24:00 may only end one)", where, n.Value, sm[1], sm[2])
		return span{}, false
	case end > secondsPerDay:
		p.errorf(at(n), "%s: %q ends at %s:%s, which is not a time of day; a range ends at 00:00 to 24:00", where, n.Value, sm[3], sm[4])
		return span{}, false
	case end <= start:
		end += secondsPerDay // runs past midnight, and belongs to the day it starts on
	}
	return span{start, end}, true
}

// parseClosed reads a schedule's closed dates.
func (p *parser) parseClosed(s *Schedule, n *yaml.Node, where string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(at(n), "%s: closed must be a list of dates (YYYY-MM-DD, like 2026-12-25), not %s", where, nodeText(n))
		return
	}
	s.closed = map[int64]bool{}
	for _, item := range n.Content {
		item = resolve(item)
		d, err := time.Parse(time.DateOnly, item.Value)
		if item.Kind != yaml.ScalarNode || !datePattern.MatchString(item.Value) || err != nil {
			p.errorf(at(item), "%s: closed: %s is not a date; write YYYY-MM-DD, like 2026-12-25", where, nodeText(item))
			continue
		}
		s.closed[d.Unix()/secondsPerDay] = true
	}
}
