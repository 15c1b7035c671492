package postgres

// This file and supersede.go are the places where the outbox changes River's job table
// itself.
//
// River takes back a job whose process died while working it (its "rescuer"): once the job
// has been running for longer than RescueStuckJobsAfter, it records an error and makes the
// job retryable. But the rescuer runs on the leader only and every 30 s, a period River
// 0.51.2 does not let anyone set; with the leader's own death it comes later still. An
// action whose replica was killed in the middle of its REST call was sent again well over
// 30 s after the kill (NOTES.md has the measurements), where the outbox promises another
// replica sends it within 30 s.
//
// So every replica, every rescueInterval, does what the rescuer does to this outbox's jobs
// alone (their kind and queue), with one difference: the job becomes available at once
// rather than retryable, because an action's retries are the worker's business (River's
// attempts stand for interrupted runs here) and a retryable job would wait for the leader
// again. The re-send then comes rescueAfter plus at most rescueInterval after the call
// started. The error appended to the job is a rivertype.AttemptError as the rescuer writes
// it, and the rescue is counted in the same metadata key, so that River's tools read the
// job as if River had rescued it.
//
// The same holds for a replica that dies while a job waits: a delayed action is run every
// few seconds only to be snoozed again (worker.go), a run of milliseconds, and the first such
// run comes right after the insert, the moment a replica killed just after a callback dies
// in. Left to rescueAfter, that action would be sent about rescueAfter late, where the
// outbox promises 10 s. A run that began over a second before the job was due (by its args' due and
// its metadata's next try) cannot have been a REST call, so a job running like that for over
// stepRescueAfter is taken back too; the second covers clocks of replicas and database that
// disagree a little.
//
// The statement leaves alone what River's rescuer decides
// otherwise (a job whose cancellation was requested, or out of attempts), and it changes a
// row only while it is still running and stuck, so replicas doing it at once, or River's own
// rescuer, rescue a job once. TestRescueHoldsToRiversSchema fails if River's table changes
// under it.

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// rescueInterval is how often each replica takes back stuck jobs.
const rescueInterval = 2 * time.Second

// stepRescueAfter is how long a run that could only snooze may take before it is taken for
// one whose replica died; such a run takes milliseconds.
const stepRescueAfter = 2 * time.Second

// rescueError is what the job's errors say about the rescue.
const rescueError = "Stuck job rescued by reservist: its replica stopped during the attempt"

const rescueSQL = `UPDATE river_job
SET state = 'available',
    scheduled_at = now(),
    errors = array_append(errors, jsonb_build_object(
        'at', now(), 'attempt', greatest(attempt, 0), 'error', $4::text, 'trace', '')),
    metadata = metadata || jsonb_build_object('river:rescue_count',
        coalesce(CASE WHEN jsonb_typeof(metadata -> 'river:rescue_count') = 'number'
                      THEN (metadata ->> 'river:rescue_count')::int END, 0) + 1)
WHERE state = 'running'
    AND kind = $1
    AND queue = $2
    AND attempt < max_attempts
    AND NOT metadata ? 'cancel_attempted_at'
    AND (attempted_at < now() - make_interval(secs => $3)
        OR (attempted_at < now() - make_interval(secs => $5)
            AND attempted_at + interval '1 second' < greatest(
                (args ->> 'due')::timestamptz,
                CASE WHEN jsonb_typeof(metadata -> 'reservist_next') = 'string'
                     THEN (metadata ->> 'reservist_next')::timestamptz END)))`

// rescue makes this outbox's jobs available again that have been running for longer than
// call, or for longer than step in a run that began before they were due, and says how many
// it took back.
func rescue(ctx context.Context, pool *pgxpool.Pool, call, step time.Duration) (int64, error) {
	tag, err := pool.Exec(ctx, rescueSQL, kind, queueName, call.Seconds(), rescueError, step.Seconds())
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// rescueLoop rescues every rescueInterval until ctx ends. A failure is left to the probe to
// report: it fails because the database cannot be reached.
func (o *Outbox) rescueLoop(ctx context.Context) {
	tick := time.NewTicker(rescueInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, probeTimeout)
		n, err := rescue(rctx, o.pool, rescueAfter, stepRescueAfter)
		cancel()
		switch {
		case err != nil:
			o.log.Debug("outbox rescue pass failed", slog.Any("error", err))
		case n > 0:
			o.log.Warn("outbox took back actions whose replica stopped while it held them; another replica carries them out",
				slog.Int64("count", n))
		}
	}
}
