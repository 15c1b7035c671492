package engine

import (
	"fmt"
	"net/url"
	"strconv"

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
