package cases

import (
	"fmt"
	"slices"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/internal/typo"
)

// CallbackParam is a parameter of TaskRouter's assignment callback.
type CallbackParam struct {
	Name string
	Doc  string
	// Seen marks the parameters TaskRouter is seen to send though its documentation does
	// not list them.
	Seen bool
}

// CallbackParams are the parameters a .yaml case may name: the assignment callback's, as
// docs/taskrouter.md lists them, and those TaskRouter is seen to add. docs/cases.md has the
// same table; a test keeps them equal.
var CallbackParams = []CallbackParam{
	{Name: engine.ParamAccountSid, Doc: "the account, AC followed by 32 hex digits"},
	{Name: engine.ParamWorkspaceSid, Doc: "the Workspace of the task and worker (WS…)"},
	{Name: engine.ParamWorkflowSid, Doc: "the Workflow routing the task (WW…)"},
	{Name: engine.ParamTaskQueueSid, Doc: "the queue the task was in when assigned (WQ…)"},
	{Name: engine.ParamTaskSid, Doc: "the task (WT…)"},
	{Name: engine.ParamTaskAge, Doc: "the task's age in whole seconds"},
	{Name: engine.ParamTaskPriority, Doc: "the task's priority, an integer"},
	{Name: engine.ParamTaskAttributes, Doc: "the task's attributes: a JSON string, or a YAML mapping in a case"},
	{Name: engine.ParamWorkerSid, Doc: "the worker reserved (WK…)"},
	{Name: engine.ParamWorkerAttributes, Doc: "the worker's attributes: a JSON string, or a YAML mapping in a case"},
	{Name: engine.ParamReservationSid, Doc: "the reservation (WR…)"},
	{Name: engine.ParamTimestamp, Doc: "when the task was assigned: the callback's time, RFC 3339 or Unix epoch seconds"},
	{Name: "TaskChannelSid", Doc: "the task's channel (TC…)", Seen: true},
	{Name: "TaskChannelUniqueName", Doc: "the task channel's name, like voice or chat", Seen: true},
	{Name: "TaskQueueName", Doc: "the queue's friendly name", Seen: true},
	{Name: "WorkerName", Doc: "the worker's friendly name", Seen: true},
	{Name: "WorkflowName", Doc: "the Workflow's friendly name", Seen: true},
}

// callbackParamNames are CallbackParams' names.
var callbackParamNames = func() []string {
	names := make([]string, len(CallbackParams))
	for i, p := range CallbackParams {
		names[i] = p.Name
	}
	return names
}()

// IsCallbackParam reports whether name is one of CallbackParams, spelt as TaskRouter spells
// it.
func IsCallbackParam(name string) bool { return slices.Contains(callbackParamNames, name) }

// unknownParam is the warning for a .yaml case key that is no callback parameter: the one
// meant, when it is near one, else what the parameters are.
func unknownParam(name string) string {
	if near := typo.Closest(name, callbackParamNames); near != "" {
		return fmt.Sprintf("unknown callback parameter %q (did you mean %s?)", name, near)
	}
	return fmt.Sprintf("unknown callback parameter %q: TaskRouter sends TaskAttributes, WorkerAttributes, TaskAge, TaskPriority, Timestamp and the SIDs (TaskSid, WorkerSid, ReservationSid, …); the rules see any other in params", name)
}
