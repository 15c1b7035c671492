package rules

import "time"

// Env is what a `when` or a `${ }` template sees: the callback's parameters in typed form
// (docs/rules.md). The engine fills one per callback; expressions are type-checked against it at load.
type Env struct {
	Task         Task              `expr:"task"`
	Worker       Worker            `expr:"worker"`
	Reservation  Reservation       `expr:"reservation"`
	AccountSid   string            `expr:"account_sid"`
	WorkspaceSid string            `expr:"workspace_sid"`
	WorkflowSid  string            `expr:"workflow_sid"`
	Params       map[string]string `expr:"params"`
	Vars         map[string]any    `expr:"vars"`
	// Now is the callback's time in the file's timezone. The engine fills it, and Open, only
	// for a file that reads the time (Set.ReadsTime).
	Now time.Time `expr:"now"`
	// Open tells whether the named schedule is open at Now; the parser allows it only as
	// open("NAME") with a schedule of the file.
	Open func(name string) bool `expr:"open"`
}

// Task is the task being assigned.
type Task struct {
	Sid        string         `expr:"sid"`
	Age        int            `expr:"age"`
	Priority   int            `expr:"priority"`
	QueueSid   string         `expr:"queue_sid"`
	Attributes map[string]any `expr:"attributes"`
}

// Worker is the worker reserved for the task.
type Worker struct {
	Sid        string         `expr:"sid"`
	Attributes map[string]any `expr:"attributes"`
}

// Reservation is the reservation the callback is about.
type Reservation struct {
	Sid string `expr:"sid"`
}

// envFields names what each object in Env offers, for error messages that say what is right.
var envFields = map[string]string{
	"rules.Env":         "task, worker, reservation, account_sid, workspace_sid, workflow_sid, params, vars, now, open(\"SCHEDULE\")",
	"rules.Task":        "task.sid, task.age, task.priority, task.queue_sid, task.attributes",
	"rules.Worker":      "worker.sid, worker.attributes",
	"rules.Reservation": "reservation.sid",
}
