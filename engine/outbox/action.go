package outbox

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
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
