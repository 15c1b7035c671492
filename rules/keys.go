package rules

import "slices"

// Key is one key that a mapping of rules.yaml takes.
type Key struct {
	Name     string
	Required bool   // the parser reports a mapping without it
	Doc      string // one line for people: editor hovers and the JSON Schema
}

// The keys of each mapping of the file, in the order docs/rules.md describes them. The
// parser takes these and no others, and rules/schema generates the JSON Schema from them, so
// that the two cannot disagree about what a file may say.
var (
	topKeys = []Key{
		{Name: "version", Required: true, Doc: "format version; must be 1"},
		{Name: "timezone", Doc: "the time zone now is given in, from the tz database (like America/New_York); UTC by default"},
		{Name: "schedules", Doc: "named opening hours, tested with open(\"NAME\") in expressions"},
		{Name: "vars", Doc: "constants, used as vars.NAME in expressions and ${ } templates"},
		{Name: "rules", Required: true, Doc: "tried top to bottom; the first whose when is true decides (rules: [] to decide every callback by default)"},
		{Name: "default", Doc: "what to do when no rule matches (default: do: defer)"},
		{Name: "on_error", Doc: "what to do when the callback cannot be decided (default: do: defer)"},
	}
	ruleKeys = []Key{
		{Name: "name", Required: true, Doc: "unique rule name: lower-case letters, digits and -"},
		{Name: "description", Doc: "free text for people"},
		{Name: "when", Required: true, Doc: "an expr condition over task, worker, reservation, params, vars and now (the callback's time; open(\"NAME\") tests a schedule); it must give true or false (when: true matches every callback)"},
		doKey,
		withKey,
		viaKey,
		delayKey,
	}
	scheduleKeys = []Key{
		{Name: "timezone", Doc: "the time zone the hours and closed dates are in; the file's timezone by default"},
		{Name: "hours", Required: true, Doc: "opening hours by day: mon … sun, a range of days like mon-fri or fri-mon, or daily, each with one \"HH:MM-HH:MM\" range or a list of them; an end at or before the start is on the next day; days not listed are closed"},
		{Name: "closed", Doc: "dates closed all day, YYYY-MM-DD in the schedule's time zone"},
	}
	// actionKeys are those of default and on_error: a rule's without its name and condition.
	actionKeys = []Key{doKey, withKey, viaKey, delayKey}

	doKey    = Key{Name: "do", Required: true, Doc: "the instruction: defer (answer {} and leave the reservation pending) or one of the instructions"}
	withKey  = Key{Name: "with", Doc: "the instruction's fields: literals or ${ expression } templates"}
	viaKey   = Key{Name: "via", Doc: "response (the default): in the answer to the callback; rest: answer {} and send the decision with the Reservations REST API"}
	delayKey = Key{Name: "delay", Doc: "wait this long (a Go duration like 2s or 500ms), then send by REST; implies via: rest"}
)

// TopKeys lists the keys the top level of rules.yaml takes.
func TopKeys() []Key { return slices.Clone(topKeys) }

// RuleKeys lists the keys a rule takes.
func RuleKeys() []Key { return slices.Clone(ruleKeys) }

// ScheduleKeys lists the keys a schedule takes.
func ScheduleKeys() []Key { return slices.Clone(scheduleKeys) }

// ActionKeys lists the keys default and on_error take.
func ActionKeys() []Key { return slices.Clone(actionKeys) }

// keyNames lists the names of keys, for the parser's checks and messages.
func keyNames(keys []Key) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	return names
}

// NamePattern is the regular expression a rule name must match.
func NamePattern() string { return namePattern.String() }

// VarNamePattern is the regular expression a name under vars must match.
func VarNamePattern() string { return varPattern.String() }

// E164Pattern is the regular expression a literal phone number must match.
func E164Pattern() string { return e164Pattern.String() }
