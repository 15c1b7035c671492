package postgres

// Supersede changes River's job table itself, as rescue.go does, because River has no
// operation for what it needs: to end the waiting jobs whose args name a reservation or a
// task, in one statement, without touching a job whose REST call is under way. River's
// JobCancel is not it: it finds jobs by ID only (a list first would race the fetch), and on
// a running job it cancels the job's context, which would cut off a call in flight.
//
// A job's run is either a step that only snoozes (its delay, a retry's backoff, a pause:
// worker.go) or a REST call. The worker claims a run for a call before it makes the call,
// by an UPDATE of the job's row that writes the run's attempted_at into the metadata under
// sendingKey and that succeeds only while the row is running and not superseded. Supersede
// is one UPDATE of the same rows. PostgreSQL locks a row for each UPDATE (River's fetch is
// one too) until its transaction ends, and an UPDATE that waited on the lock evaluates its
// WHERE and SET again on the row as the other left it. So for each job exactly one of
// these comes first:
//
//   - River's fetch: the job is running; Supersede, after it, finds the run unclaimed and
//     cancels the job; the worker's claim then finds it cancelled and sends nothing.
//   - Supersede, on a waiting job: the job is cancelled; no fetch takes it any more.
//   - the worker's claim: the call goes ahead; Supersede, after it, only marks the job
//     (supersededKey) and leaves its state alone, so the call's own answer decides. River
//     keeps the mark through the run's end (it merges metadata), so if the answer was to
//     wait the next run finds the mark and ends the job as superseded.
//   - Supersede, on a running unclaimed job: cancelled, as for the fetch above.
//
// A job ends as superseded once, counted once: by the Supersede that cancelled it, or by
// the worker that ended a marked job, with an UPDATE that succeeds only while the job is
// still running.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reservist/reservist/engine/outbox"
)

// Metadata keys of supersession.
const (
	// supersededKey holds the event type that superseded the job.
	supersededKey = "reservist_superseded"
	// sendingKey holds the epoch of the run (its attempted_at) that claimed the job for a
	// REST call.
	sendingKey = "reservist_sending"
)

// supersededError is what the job's errors say when it ends superseded by an event.
const supersededError = "superseded: an Event callback said the reservation or its task is over"

// supersedeSQL ends the waiting (and running but unclaimed) jobs of the outbox whose args
// contain $3 (a reservation's or a task's SID, matched by River's GIN index on args), and
// marks those whose run has claimed a call. It returns each job's args and whether it was
// ended. TestSupersedeHoldsToRiversSchema holds it to River's table.
const supersedeSQL = `UPDATE river_job
SET state = CASE WHEN ` + claimedRun + ` THEN state ELSE 'cancelled' END,
    finalized_at = CASE WHEN ` + claimedRun + ` THEN finalized_at ELSE now() END,
    errors = CASE WHEN ` + claimedRun + ` THEN errors ELSE array_append(errors, jsonb_build_object(
        'at', now(), 'attempt', greatest(attempt, 0), 'error', $5::text, 'trace', '')) END,
    metadata = metadata || jsonb_build_object('` + supersededKey + `', $4::text)
WHERE kind = $1
    AND queue = $2
    AND args @> $3::jsonb
    AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
RETURNING args, state = 'cancelled'`

// claimedRun is true of a job whose current run has claimed a REST call.
const claimedRun = `(state = 'running' AND metadata ->> '` + sendingKey + `' = extract(epoch FROM attempted_at)::text)`

// claimSQL claims the job's current run for a REST call, unless it is superseded.
const claimSQL = `UPDATE river_job
SET metadata = metadata || jsonb_build_object('` + sendingKey + `', extract(epoch FROM attempted_at)::text)
WHERE id = $1 AND state = 'running' AND NOT metadata ? '` + supersededKey + `'`

// endSupersededSQL ends a running job found marked superseded, unless something else has
// ended it meanwhile.
const endSupersededSQL = `UPDATE river_job
SET state = 'cancelled', finalized_at = now(),
    errors = array_append(errors, jsonb_build_object(
        'at', now(), 'attempt', greatest(attempt, 0), 'error', $2::text, 'trace', ''))
WHERE id = $1 AND state = 'running'`

// Supersede ends the pending actions of a reservation or a task in the whole shared outbox,
// whichever replica holds them; see outbox.Outbox and the top of this file. The count and
// the log line of each action it ends are this replica's; an action marked in flight on
// another replica is counted there, if it ends superseded.
//
// Cost: one UPDATE, whose rows River's GIN index on args finds once autovacuum has moved
// new jobs into it; before that the planner may scan the outbox's rows (docs/outbox.md and
// BenchmarkSupersede have the measurements).
func (o *Outbox) Supersede(ctx context.Context, s outbox.Supersession) (int, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if o.life.Closed() {
		return 0, outbox.ErrClosed
	}
	match := map[string]string{"reservation_sid": s.ReservationSid}
	if s.TaskSid != "" {
		match = map[string]string{"task_sid": s.TaskSid}
	}
	ended, err := supersede(ctx, o.pool, match, s.Event)
	if err != nil {
		return 0, fmt.Errorf("%w: superseding: %v", outbox.ErrUnreachable, err)
	}
	for _, a := range ended {
		o.carrier.Supersede(a, s.Event, func(outbox.Step) {})
	}
	return len(ended), nil
}

// supersede runs supersedeSQL for the jobs whose args contain match, and returns the
// actions it ended.
func supersede(ctx context.Context, pool *pgxpool.Pool, match map[string]string, event string) ([]outbox.Action, error) {
	contains, err := json.Marshal(match)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, supersedeSQL, kind, queueName, contains, event, supersededError)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ended []outbox.Action
	for rows.Next() {
		var args []byte
		var cancelled bool
		if err := rows.Scan(&args, &cancelled); err != nil {
			return nil, err
		}
		if !cancelled {
			continue
		}
		var j job
		if err := json.Unmarshal(args, &j); err != nil {
			return nil, fmt.Errorf("a job's args: %w", err)
		}
		ended = append(ended, j.action())
	}
	return ended, rows.Err()
}

// claim claims the job's current run for a REST call; false means it is superseded (or no
// longer running), and the call must not be made.
func claim(ctx context.Context, pool *pgxpool.Pool, id int64) (bool, error) {
	tag, err := pool.Exec(ctx, claimSQL, id)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// endSuperseded ends a running job found marked superseded, and reports whether it was this
// call that ended it (and so must count it).
func endSuperseded(ctx context.Context, pool *pgxpool.Pool, id int64) (bool, error) {
	tag, err := pool.Exec(ctx, endSupersededSQL, id, supersededError)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}
