// Package outbox carries out assignment decisions through the TaskRouter Reservations REST
// API: an Action is stored durably before the callback is answered, then sent once its delay
// has passed, retried until the reservation's deadline, and never queued twice for one
// reservation (docs/outbox.md).
//
// This package holds what both backends share, so that they mean the same: the Action, the
// Outbox interface, the Carrier that makes one attempt and decides what follows from its
// answer, and the metrics. The backends are in outbox/boltdb (one process, a file) and
// outbox/postgres (every replica, one database).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Outbox keeps actions until they are carried out. Its methods are safe for concurrent use.
type Outbox interface {
	// Put stores a durably before it returns. queued is false, and nothing changes, when an
	// action for the same ReservationSid is known already: pending, or finished and not yet
	// past its deadline. An action that fails Validate is refused before it reaches the
	// store, and never fails another one stored with it.
	//
	// When ctx ends first Put fails, and the caller must answer the callback as if the
	// outbox could not be written (docs/http.md: synchronously, or 503 with a delay). The
	// callback's response budget is ctx's deadline, so that a slow store cannot hold the
	// answer past it. An action whose write still lands after its caller gave up is
	// withdrawn, never carried out: the callback has been answered another way. (Only a
	// process that dies between that write and its withdrawal carries it out after a
	// restart, which is the at-least-once case of docs/outbox.md.)
	Put(ctx context.Context, a Action) (queued bool, err error)
	// Run carries out due actions until ctx is done, then gives the calls in flight a
	// bounded time to finish and returns. What it did not carry out stays stored.
	Run(ctx context.Context) error
	// Supersede ends pending actions because an Event callback said their reservation (or
	// their task) is over, and says how many it ended. An action waiting (for its delay, a
	// retry, a pause) ends as superseded: it is never sent, it is counted
	// reservist_rest_calls_total{result="superseded",status_class="none"} and logged at
	// info with the event, and its reservation stays known until its deadline, so that Put
	// still refuses it. An action in flight, its REST call under way, is not counted in n
	// and finishes by its own answer; should that answer ask for a retry, it ends as
	// superseded instead. An action is either sent or superseded, never both. SIDs the
	// outbox has no pending action for end nothing: n is 0, err nil. A Supersession that
	// fails Validate is refused.
	Supersede(ctx context.Context, s Supersession) (n int, err error)
	// Stats says how much is pending, for the metrics.
	Stats(ctx context.Context) (Stats, error)
	// Ready is nil while Put can store actions, else why it cannot: closed, or the store
	// failing (see StoreHealth). /readyz is 503 while it is not nil.
	Ready() error
	// Unauthorized reports whether TaskRouter refused the REST credentials (401 or 403).
	Unauthorized() bool
	// Close stops Run and releases the store; pending actions stay stored.
	Close() error
}

// Supersession is what an Event callback says is over: one reservation, or every
// reservation of one task. Exactly one of the SIDs is set.
type Supersession struct {
	// ReservationSid ends that reservation's pending action (reservation.accepted,
	// .rejected, .timeout, .canceled, .rescinded, .completed, .wrapup).
	ReservationSid string
	// TaskSid ends every pending action of that task (task.canceled, .deleted, .completed).
	TaskSid string
	// Event is the callback's EventType, for the log.
	Event string
}

// ErrInvalidSupersession is wrapped by the error Supersession.Validate returns.
var ErrInvalidSupersession = errors.New("outbox: invalid supersession")

// maxEventLen bounds the event type a Supersession carries into the log; TaskRouter's are
// under 30 characters.
const maxEventLen = 64

// Validate says why a Supersession names nothing to end: neither or both SIDs set, or one
// that is not a reservation's (WR…) or task's (WT…) SID, or an event type too long to be
// TaskRouter's.
func (s Supersession) Validate() error {
	switch {
	case (s.ReservationSid == "") == (s.TaskSid == ""):
		return fmt.Errorf("%w: set exactly one of ReservationSid and TaskSid", ErrInvalidSupersession)
	case s.ReservationSid != "" && !ValidSid("WR", s.ReservationSid):
		return fmt.Errorf("%w: ReservationSid is not WR followed by 32 hex digits", ErrInvalidSupersession)
	case s.TaskSid != "" && !ValidSid("WT", s.TaskSid):
		return fmt.Errorf("%w: TaskSid is not WT followed by 32 hex digits", ErrInvalidSupersession)
	case len(s.Event) > maxEventLen:
		return fmt.Errorf("%w: event type longer than %d characters", ErrInvalidSupersession, maxEventLen)
	}
	return nil
}

// Stats describe what an outbox holds.
type Stats struct {
	Depth  int       // pending actions, waiting or in flight
	Oldest time.Time // when the oldest pending action was received; zero when none is
}

// Sender carries an action out, typically with twilio-go.
//
// An error that is or wraps an *HTTPError is judged by its status and Twilio code (see
// Judge); one wrapping ErrInvalidParams is final; any other error is taken for a network
// error and retried.
type Sender interface {
	Send(ctx context.Context, a Action) error
}

// Clock is the outbox's source of time. Tests replace it to run delays and backoff without
// waiting for real time to pass.
//
// Only a backend's scheduler calls After, for the time until the next action is due, with at
// most one such wait outstanding, abandoned when it is woken for another reason. So a test
// clock may advance its time by d and fire at once: that skips exactly the time the outbox
// would have slept.
type Clock interface {
	Now() time.Time
	// After is time.After: the channel receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// After is time.After.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Defaults shared by the backends.
const (
	// DefaultConcurrency is --rest-concurrency's default: REST calls in flight at once.
	DefaultConcurrency = 8
	// DefaultDrain is how long Run lets calls in flight finish once it is stopped. A call cut
	// off may have reached TaskRouter already: sent again later, it is refused as no longer
	// pending.
	DefaultDrain = 5 * time.Second
)

// ErrClosed is returned by Put and Run after Close.
var ErrClosed = errors.New("outbox: closed")

// ErrUnreachable is wrapped by the errors of Ready and Put while a shared outbox's database
// cannot be reached: decisions that go by REST then follow the "outbox cannot be written"
// rule until it is back (docs/outbox.md).
var ErrUnreachable = errors.New("outbox: the database cannot be reached")
