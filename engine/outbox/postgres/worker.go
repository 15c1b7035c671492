package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/reservist/reservist/engine/outbox"
)

// job is an Action as River keeps it: the job's args are the Action's JSON.
type job struct {
	outbox.Action
	// ReservationSid shadows the Action's field of the same JSON name, so that the args stay
	// the Action's JSON alone, and tags it as River's unique key: one job per reservation,
	// whatever two callbacks for it asked for.
	ReservationSid string `json:"reservation_sid" river:"unique"`
}

func newJob(a outbox.Action) job {
	a.Params = a.Params.Clone() // the caller may reuse its map
	a.Private = slices.Clone(a.Private)
	return job{Action: a, ReservationSid: a.ReservationSid}
}

// action is the Action the job holds.
func (j job) action() outbox.Action {
	a := j.Action
	a.ReservationSid = j.ReservationSid
	return a
}

// Kind is River's name for the outbox's jobs.
func (job) Kind() string { return kind }

// InsertOpts put every outbox job in the outbox's queue, unique by reservation.
func (job) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, UniqueOpts: uniqueForever}
}

// progress is what the worker keeps in a job's metadata between its runs: River counts
// attempts of its own (a snooze is not one), so the Carrier's count of tries and the time of
// the next try are kept here, as the embedded backend keeps them in memory.
type progress struct {
	Tries int       `json:"reservist_tries,omitempty"`
	Next  time.Time `json:"reservist_next,omitzero"`
	// Superseded is the event type of a Supersede that came while a run of the job was in
	// its REST call (supersede.go).
	Superseded string `json:"reservist_superseded,omitempty"`
}

// Errors River records with a job that ends without being sent.
var (
	errFailed     = errors.New("TaskRouter refused the action for good; reservist logged why")
	errAbandoned  = errors.New("the reservation's deadline passed before the action could be sent")
	errNotPending = errors.New("superseded: TaskRouter said the reservation is no longer pending")
)

// worker carries out due outbox jobs on every replica. River must find it on whichever
// replica leads, too: its rescuer discards a stuck job whose kind the leader has no worker
// for.
type worker struct {
	river.WorkerDefaults[job]
	o *Outbox
}

// Work makes an attempt at a due job through the Carrier and turns the outcome into River's
// terms; a job not due yet (its delay, Retry-After or backoff) is snoozed until it is, in
// steps of at most maxSnooze.
//
// While the Carrier holds every call back (a 429's pause, an open circuit breaker), the
// worker waits in the job for up to maxSnooze before it snoozes it: the process's workers
// sleep through the pause, as the embedded backend's scheduler does, instead of every
// pending job coming round to be held every few seconds.
func (w *worker) Work(ctx context.Context, j *river.Job[job]) error {
	if w.o.stopping.Load() {
		return river.JobSnooze(0) // shutting down: another replica, or the next Run, takes it
	}
	a := j.Args.action()
	var p progress
	if err := json.Unmarshal(j.Metadata, &p); err != nil {
		p = progress{} // River's own keys only, or none: nothing tried yet
	}
	if p.Superseded != "" {
		// Marked while a run was in its call, whose answer was to wait: it ends here.
		ended, err := endSuperseded(ctx, w.o.pool, j.ID)
		if err != nil {
			return river.JobSnooze(time.Second) // the database is failing: look again
		}
		if ended {
			w.o.carrier.Supersede(a, p.Superseded, func(outbox.Step) {})
		}
		return river.JobCancel(errors.New(supersededError))
	}
	now := w.o.clock.Now()
	notBefore := a.Due
	if p.Next.After(notBefore) {
		notBefore = p.Next
	}
	if wait := notBefore.Sub(now); wait > 0 {
		return river.JobSnooze(min(wait, maxSnooze))
	}
	if held := w.o.carrier.HeldUntil(now); !held.IsZero() {
		t := time.NewTimer(min(held.Sub(now), maxSnooze))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		now = w.o.clock.Now()
		if w.o.stopping.Load() || ctx.Err() != nil {
			return river.JobSnooze(0)
		}
		if held := w.o.carrier.HeldUntil(now); !held.IsZero() {
			return river.JobSnooze(min(held.Sub(now), maxSnooze))
		}
	}

	// From here on this run is a call, unless Supersede has got to the job first
	// (supersede.go): then it is cancelled, counted by the Supersede, and not sent.
	if ok, err := claim(ctx, w.o.pool, j.ID); err != nil {
		return river.JobSnooze(time.Second) // the database is failing: try again
	} else if !ok {
		return river.JobCancel(errors.New(supersededError))
	}

	// River's attempt is 1 on a job's first run and grows only when a run did not end by
	// the worker's return (a replica died in the call): those count as tries too.
	tries := p.Tries + max(j.Attempt-1, 0)
	var kept outbox.Step
	w.o.carrier.Try(ctx, a, tries, func(s outbox.Step) { kept = s })
	switch kept.Outcome {
	case outbox.Sent, outbox.DryRun:
		return nil
	case outbox.Failed:
		return river.JobCancel(errFailed)
	case outbox.Superseded:
		return river.JobCancel(errNotPending)
	case outbox.Abandoned:
		return river.JobCancel(errAbandoned)
	case outbox.Retried:
		if err := errors.Join(river.MetadataSet(ctx, "reservist_tries", p.Tries+1),
			river.MetadataSet(ctx, "reservist_next", kept.Next)); err != nil {
			return err // River retries it; the tries are counted from its attempts then
		}
		return river.JobSnooze(max(0, min(kept.Next.Sub(w.o.clock.Now()), maxSnooze)))
	case outbox.Held: // no attempt: the same try comes again once calls are let through
		if err := river.MetadataSet(ctx, "reservist_next", kept.Next); err != nil {
			return err
		}
		return river.JobSnooze(max(0, min(kept.Next.Sub(w.o.clock.Now()), maxSnooze)))
	}
	return river.JobSnooze(0) // Interrupted: cut off by the shutdown, still pending
}
