package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Action is one decision to carry out through the Reservations REST API on one reservation.
// It is the same value from the decision that makes it to the store that keeps it and the
// sender that sends it; the stores keep it as JSON.
type Action struct {
	ReservationSid string `json:"reservation_sid"`
	TaskSid        string `json:"task_sid"`
	WorkspaceSid   string `json:"workspace_sid"`
	WorkerSid      string `json:"worker_sid,omitempty"`
	WorkflowSid    string `json:"workflow_sid,omitempty"`
	// Rule is the name of the rule that decided, for logs and metrics.
	Rule string `json:"rule,omitempty"`
	// Params are the parameters of the reservation update, by their REST names.
	Params Params `json:"params"`
	// Private names the parameters whose values came from the callback (a rule's ${ }
	// templates): they can hold attributes, which are personal data, so logs show them only
	// when they are SIDs (see LogParams).
	Private []string `json:"private,omitempty"`
	// Received is the callback's time: when TaskRouter created the reservation.
	Received time.Time `json:"received"`
	// Due is the earliest time to send: Received plus the rule's delay.
	Due time.Time `json:"due"`
	// Deadline is when the reservation times out; the action is abandoned after it.
	Deadline time.Time `json:"deadline"`
}

// Params are the parameters of a reservation update by their REST names (Instruction,
// CallFrom, …), each a string, an int, a bool or a []string (a parameter sent once per
// item). They keep their types from the decision to the sender, which hands them to
// twilio-go as they are.
type Params map[string]any

// UnmarshalJSON reads params as Marshal wrote them: JSON numbers come back as ints and lists
// as []string, so that a stored action equals the one put.
func (p *Params) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(Params, len(raw))
	for k, v := range raw {
		switch x := v.(type) {
		case string, bool:
			out[k] = x
		case float64:
			n := int(x)
			if float64(n) != x {
				return fmt.Errorf("parameter %s: %v is not an integer", k, x)
			}
			out[k] = n
		case []any:
			items := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("parameter %s: item %d is not a string", k, i)
				}
				items[i] = s
			}
			out[k] = items
		default:
			return fmt.Errorf("parameter %s: %T is not a parameter value", k, v)
		}
	}
	*p = out
	return nil
}

// Form is the parameters as TaskRouter receives them: text, a list as one key per item.
func (p Params) Form() url.Values {
	out := make(url.Values, len(p))
	for k, v := range p {
		switch x := v.(type) {
		case string:
			out[k] = []string{x}
		case int:
			out[k] = []string{strconv.Itoa(x)}
		case bool:
			out[k] = []string{strconv.FormatBool(x)}
		case []string:
			out[k] = slices.Clone(x)
		default:
			out[k] = []string{fmt.Sprint(x)}
		}
	}
	return out
}

// Clone copies the parameters, so that the copy shares no list with them.
func (p Params) Clone() Params {
	out := make(Params, len(p))
	for k, v := range p {
		if l, ok := v.([]string); ok {
			v = slices.Clone(l)
		}
		out[k] = v
	}
	return out
}

// ErrInvalidAction is wrapped by the error Validate returns; Put refuses such an action
// before it reaches the store.
var ErrInvalidAction = errors.New("outbox: invalid action")

// ValidSid reports whether s is a Twilio SID with the given two-letter prefix: the prefix
// and 32 hex digits (either case). A callback's SIDs are checked by this shape before an
// action is stored, so that an oversized or odd value never reaches the store, the REST
// path or the logs.
func ValidSid(prefix, s string) bool {
	if len(s) != 34 || s[:2] != prefix {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isSid reports whether s has the shape of any Twilio SID: two upper-case letters and 32
// hex digits.
func isSid(s string) bool {
	return len(s) == 34 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z' && ValidSid(s[:2], s)
}

// Validate says why an action cannot be stored: a missing or malformed SID (ReservationSid
// WR…, TaskSid WT…, WorkspaceSid WS…, and WorkerSid WK… and WorkflowSid WW… when given), no
// parameters, or no deadline. Every backend's Put calls it first, so that one bad action is
// refused on its own and never fails the others stored with it.
func (a Action) Validate() error {
	for _, f := range [...]struct {
		name, prefix, value string
		required            bool
	}{
		{"ReservationSid", "WR", a.ReservationSid, true},
		{"TaskSid", "WT", a.TaskSid, true},
		{"WorkspaceSid", "WS", a.WorkspaceSid, true},
		{"WorkerSid", "WK", a.WorkerSid, false},
		{"WorkflowSid", "WW", a.WorkflowSid, false},
	} {
		switch {
		case f.value == "" && f.required:
			return fmt.Errorf("%w: no %s", ErrInvalidAction, f.name)
		case f.value != "" && !ValidSid(f.prefix, f.value):
			return fmt.Errorf("%w: %s is not %s followed by 32 hex digits", ErrInvalidAction, f.name, f.prefix)
		}
	}
	if len(a.Params) == 0 {
		return fmt.Errorf("%w: no parameters", ErrInvalidAction)
	}
	if a.Deadline.IsZero() {
		return fmt.Errorf("%w: no deadline", ErrInvalidAction)
	}
	return nil
}

// Redacted stands in the logs for a private parameter's value.
const Redacted = "[redacted]"

// LogParams are the action's parameters as logs may show them: as TaskRouter receives
// them, with every private value that is not a SID replaced by Redacted.
func (a Action) LogParams() url.Values {
	form := a.Params.Form()
	for _, name := range a.Private {
		vals, ok := form[name]
		if !ok {
			continue
		}
		for i, v := range vals {
			if !isSid(v) {
				vals[i] = Redacted
			}
		}
	}
	return form
}

// scrub removes the action's private values from text that may quote them, such as an
// error message TaskRouter sent back about a parameter.
func (a Action) scrub(s string) string {
	for _, name := range a.Private {
		for _, v := range a.Params.Form()[name] {
			if len(v) >= 3 && !isSid(v) {
				s = strings.ReplaceAll(s, v, Redacted)
			}
		}
	}
	return s
}
