package engine

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/reservist/reservist/rules"
)

// The callback parameters TaskRouter sends (docs/taskrouter.md).
const (
	ParamAccountSid       = "AccountSid"
	ParamWorkspaceSid     = "WorkspaceSid"
	ParamWorkflowSid      = "WorkflowSid"
	ParamTaskQueueSid     = "TaskQueueSid"
	ParamTaskSid          = "TaskSid"
	ParamTaskAge          = "TaskAge"
	ParamTaskPriority     = "TaskPriority"
	ParamTaskAttributes   = "TaskAttributes"
	ParamWorkerSid        = "WorkerSid"
	ParamWorkerAttributes = "WorkerAttributes"
	ParamReservationSid   = "ReservationSid"
)

// newEnv builds the expression environment for one callback. The environment is filled as
// far as possible even when err is non-nil, so that on_error templates can still read SIDs.
// err says why the callback cannot be decided: attributes missing or not a JSON object, or a
// TaskAge or TaskPriority that is not an integer. env.Params stays nil unless withParams:
// most rule sets never read `params`, and the map is a good part of a callback's cost.
func newEnv(params url.Values, vars map[string]any, withParams bool) (*rules.Env, error) {
	env := &rules.Env{Vars: vars}
	if withParams {
		env.Params = make(map[string]string, len(params))
		for k, vs := range params {
			if len(vs) > 0 {
				env.Params[k] = vs[0]
			}
		}
	}
	env.AccountSid = param(params, ParamAccountSid)
	env.WorkspaceSid = param(params, ParamWorkspaceSid)
	env.WorkflowSid = param(params, ParamWorkflowSid)
	env.Reservation.Sid = param(params, ParamReservationSid)
	env.Task.Sid = param(params, ParamTaskSid)
	env.Task.QueueSid = param(params, ParamTaskQueueSid)
	env.Worker.Sid = param(params, ParamWorkerSid)

	var firstErr error
	keep := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	var err error
	if env.Task.Age, err = intParam(params, ParamTaskAge); err != nil {
		keep(err)
	}
	if env.Task.Priority, err = intParam(params, ParamTaskPriority); err != nil {
		keep(err)
	}
	if env.Task.Attributes, err = attributes(params, ParamTaskAttributes); err != nil {
		keep(err)
	}
	if env.Worker.Attributes, err = attributes(params, ParamWorkerAttributes); err != nil {
		keep(err)
	}
	return env, firstErr
}

// param is a parameter's first value, "" when it is missing.
func param(params url.Values, name string) string {
	if vs := params[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func intParam(params url.Values, name string) (int, error) {
	s := param(params, name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s is not an integer", name)
	}
	return n, nil
}

// attributes parses a JSON-object parameter. It never says what the value was: attributes
// hold personal data and errors are logged.
func attributes(params url.Values, name string) (map[string]any, error) {
	vs, ok := params[name]
	if !ok || len(vs) == 0 {
		return nil, fmt.Errorf("%s is missing", name)
	}
	m, err := decodeObject(vs[0])
	if err != nil {
		return nil, fmt.Errorf("%s is not a JSON object", name)
	}
	return m, nil
}

// ParamTimestamp is the callback parameter that says when TaskRouter made the reservation:
// the callback's time, which `now` is (docs/rules.md, "Time").
const ParamTimestamp = "Timestamp"

// ErrNoTimestamp is Timestamp's error for a callback without the parameter.
var ErrNoTimestamp = errors.New("the callback has no Timestamp")

// Timestamp reads a callback's time from its Timestamp parameter.
func Timestamp(params url.Values) (time.Time, error) {
	s, ok := params[ParamTimestamp]
	if !ok || len(s) == 0 || s[0] == "" {
		return time.Time{}, ErrNoTimestamp
	}
	return ParseTime(s[0])
}

// ParseTime reads a time as a Timestamp gives it: Unix epoch seconds with an optional decimal
// fraction, as TaskRouter sends it, or an RFC 3339 time, as hand-written cases, `explain
// --at` and the playground's "at" may say it.
func ParseTime(s string) (time.Time, error) {
	if t, ok := parseTime(s); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither Unix epoch seconds (like 1773062100) nor an RFC 3339 time (like 2026-03-09T09:15:00-04:00)", truncate(s, 64))
}

// parseTime is ParseTime without an error to build: it is on the path of every callback.
func parseTime(s string) (time.Time, bool) {
	if len(s) == 0 || len(s) > 64 {
		return time.Time{}, false
	}
	if t, ok := parseEpoch(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// parseEpoch reads seconds since 1970 with an optional fraction: "1773062100" or
// "1773062100.25". Digits past nanoseconds are dropped.
func parseEpoch(s string) (time.Time, bool) {
	const maxDigits = 12 // seconds up to the year 33658
	var sec, nsec int64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if i == maxDigits {
			return time.Time{}, false
		}
		sec = sec*10 + int64(s[i]-'0')
	}
	if i == 0 {
		return time.Time{}, false
	}
	if i < len(s) {
		if s[i] != '.' || i == len(s)-1 {
			return time.Time{}, false
		}
		scale := int64(100_000_000)
		for _, c := range []byte(s[i+1:]) {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			nsec += int64(c-'0') * scale
			scale /= 10
		}
	}
	return time.Unix(sec, nsec), true
}

// WithTimestamp returns params as a callback that is decided at at: params itself when their
// Timestamp is usable, else a copy whose Timestamp is at. Capture and the playground's recent
// list keep callbacks this way, so that one that came without a usable Timestamp replays at
// the time it was decided rather than at the time it is replayed.
func WithTimestamp(params url.Values, at time.Time) url.Values {
	if _, err := Timestamp(params); err == nil || at.IsZero() {
		return params
	}
	out := maps.Clone(params)
	out[ParamTimestamp] = []string{FormatTimestamp(at)}
	return out
}

// FormatTimestamp writes a time as TaskRouter writes a Timestamp: Unix epoch seconds, with
// the fraction when there is one.
func FormatTimestamp(t time.Time) string {
	s := strconv.FormatInt(t.Unix(), 10)
	if ns := t.Nanosecond(); ns != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%09d", ns), "0")
	}
	return s
}

// truncate bounds a value quoted in a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
