package cases

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/rules"
)

// WriteExplanation writes how one case is decided, rule by rule, as `reservist explain`
// shows it: every rule tried and its result, the decision, the answer, and the REST call
// when the decision makes one.
func WriteExplanation(w io.Writer, set *rules.Set, c *Case, d *engine.Decision) {
	fmt.Fprintf(w, "case:  %s\nrules: %s (revision %s)\n", c.Path, set.Path, set.Revision[:12])
	if set.ReadsTime || len(set.Schedules) > 0 {
		fmt.Fprintf(w, "time:  %s, %s\n", d.At.Format(time.RFC3339Nano), d.At.Weekday())
	}
	if len(set.Schedules) > 0 {
		states := make([]string, len(set.Schedules))
		for i, sc := range set.Schedules {
			state := "closed"
			if sc.Open(d.At) {
				state = "open"
			}
			states[i] = sc.Name + " " + state
		}
		fmt.Fprintf(w, "hours: %s\n", strings.Join(states, ", "))
	}
	fmt.Fprintln(w)
	if d.Err != nil && len(d.Trace) == 0 {
		fmt.Fprintf(w, "the callback cannot be decided: %v\n\n", d.Err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, s := range d.Trace {
		result := s.Result
		if s.Error != "" {
			result += ": " + s.Error
		}
		fmt.Fprintf(tw, "  %d.\t%s\t%s\n", i+1, s.Rule, result)
	}
	if len(d.Trace) < len(set.Rules) && d.Err == nil && d.Rule != "default" {
		n := len(set.Rules) - len(d.Trace)
		fmt.Fprintf(tw, "  \t(%d %s below not tried)\t\n", n, plural(n, "rule", "rules"))
	}
	tw.Flush()
	fmt.Fprintf(w, "\ndecision: %s → %s", d.Rule, d.Instruction())
	if d.REST() {
		fmt.Fprintf(w, " via rest, delay %s", d.Delay())
	}
	fmt.Fprintln(w)
	if d.Err != nil && len(d.Trace) > 0 {
		fmt.Fprintf(w, "because:  %v\n", d.Err)
	}
	fmt.Fprintf(w, "response: %s\n", d.Response())
	if d.REST() {
		fmt.Fprintf(w, "rest:     POST /v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{ReservationSid}\n")
		params := d.Params().Form()
		for _, k := range slices.Sorted(maps.Keys(params)) {
			for _, v := range params[k] {
				fmt.Fprintf(w, "          %s=%s\n", k, v)
			}
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
