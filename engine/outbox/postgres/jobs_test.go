package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reservist/reservist/internal/pgtest"
)

// TestUniqueByReservationSid: one job per ReservationSid, however many callbacks for it
// arrive at once, and after the job has ended however it ended.
func TestUniqueByReservationSid(t *testing.T) {
	t.Parallel()
	pool, _ := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("8 concurrent inserts", func(t *testing.T) {
		// An insert-only client, so that nothing runs the job in between.
		c := newClient(t, pool, &river.Config{Workers: workers(&actionWorker{})})
		const n = 8
		var results [n]*rivertype.JobInsertResult
		var errs [n]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Different instructions: only the ReservationSid is the key.
				results[i], errs[i] = c.Insert(ctx, actionArgs{ReservationSid: "WR-concurrent", Instruction: string(rune('a' + i))},
					&river.InsertOpts{UniqueOpts: uniqueForever})
			}()
		}
		close(start)
		wg.Wait()
		inserted := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("insert %d: %v", i, errs[i])
			}
			if !results[i].UniqueSkippedAsDuplicate {
				inserted++
			}
			if results[i].Job.ID != results[0].Job.ID {
				t.Errorf("insert %d returned job %d, insert 0 job %d", i, results[i].Job.ID, results[0].Job.ID)
			}
		}
		var rows int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE args->>'reservation_sid' = 'WR-concurrent'").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if inserted != 1 || rows != 1 {
			t.Errorf("%d concurrent inserts of one key: %d reported inserted, %d rows; want 1 and 1", n, inserted, rows)
		}
	})

	// A worker that ends each job the way its instruction says.
	w := &actionWorker{run: func(_ context.Context, job *river.Job[actionArgs]) error {
		switch job.Args.Instruction {
		case "cancel":
			return river.JobCancel(errors.New("Twilio 20404: not found"))
		case "fail":
			return errors.New("Twilio 20003: authenticate")
		}
		return nil
	}}
	c := newClient(t, pool, &river.Config{
		FetchPollInterval: pollInterval,
		Logger:            quietLogger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers:           workers(w),
	})
	for _, tc := range []struct {
		instruction string
		final       rivertype.JobState
		// whether River's default unique states still refuse a second job after it
		defaultRefuses bool
	}{
		{"complete", rivertype.JobStateCompleted, true},
		{"cancel", rivertype.JobStateCancelled, false},
		{"fail", rivertype.JobStateDiscarded, false},
	} {
		t.Run("after "+string(tc.final), func(t *testing.T) {
			for _, u := range []struct {
				name    string
				opts    river.UniqueOpts
				refuses bool
			}{
				{"every state", uniqueForever, true},
				{"River's default states", river.UniqueOpts{ByArgs: true}, tc.defaultRefuses},
			} {
				sid := "WR-" + tc.instruction + "-" + strings.ReplaceAll(u.name, " ", "-")
				opts := &river.InsertOpts{MaxAttempts: 1, UniqueOpts: u.opts}
				first, err := c.Insert(ctx, actionArgs{ReservationSid: sid, Instruction: tc.instruction}, opts)
				if err != nil {
					t.Fatal(err)
				}
				waitState(t, c, first.Job.ID, tc.final, 10*time.Second)
				second, err := c.Insert(ctx, actionArgs{ReservationSid: sid, Instruction: "complete"}, opts)
				if err != nil {
					t.Fatal(err)
				}
				if refused := second.UniqueSkippedAsDuplicate; refused != u.refuses {
					t.Errorf("unique in %s: a second insert after the first job was %s: refused %v, want %v",
						u.name, tc.final, refused, u.refuses)
				}
			}
		})
	}
}

// TestSnoozeIsNotAnAttempt: River 0.51.2 takes one back from attempt for each snooze (the
// run is still recorded in attempted_at/attempted_by), so a job can wait out Retry-After
// any number of times without using up its attempts; the count is kept in metadata. What
// the worker sets with MetadataSet before snoozing is there at the next run, which is
// where the backend can keep its own count of tries.
func TestSnoozeIsNotAnAttempt(t *testing.T) {
	t.Parallel()
	pool, _ := newDatabase(t)
	type seen struct{ attempt, maxAttempts, tries int }
	var mu sync.Mutex
	var runs []seen
	w := &actionWorker{run: func(ctx context.Context, job *river.Job[actionArgs]) error {
		var md struct {
			Tries int `json:"reservist_tries"`
		}
		if err := json.Unmarshal(job.Metadata, &md); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, seen{job.Attempt, job.MaxAttempts, md.Tries})
		if err := river.MetadataSet(ctx, "reservist_tries", md.Tries+1); err != nil {
			return err
		}
		if len(runs) <= 3 {
			return river.JobSnooze(10 * time.Millisecond)
		}
		return nil
	}}
	c := newClient(t, pool, &river.Config{
		FetchPollInterval: pollInterval,
		Logger:            quietLogger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers(w),
	})
	// One attempt only: a snooze that counted would discard the job at its second run.
	res, err := c.Insert(context.Background(), actionArgs{ReservationSid: "WR-snooze"}, &river.InsertOpts{MaxAttempts: 1, UniqueOpts: uniqueForever})
	if err != nil {
		t.Fatal(err)
	}
	row := waitState(t, c, res.Job.ID, rivertype.JobStateCompleted, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 3 snoozes and a last run", len(runs))
	}
	for i, r := range runs {
		if r.attempt != 1 || r.maxAttempts != 1 || r.tries != i {
			t.Errorf("run %d saw attempt %d of %d and %d tries, want 1 of 1 and %d", i+1, r.attempt, r.maxAttempts, r.tries, i)
		}
	}
	var md struct {
		Snoozes int `json:"snoozes"`
		Tries   int `json:"reservist_tries"`
	}
	if err := json.Unmarshal(row.Metadata, &md); err != nil {
		t.Fatal(err)
	}
	if row.Attempt != 1 || row.MaxAttempts != 1 || md.Snoozes != 3 || md.Tries != 4 {
		t.Errorf("after 3 snoozes: attempt %d of %d, metadata %s", row.Attempt, row.MaxAttempts, row.Metadata)
	}
}

// TestCancelIsFinal: JobCancel ends the job at once, whatever attempts it has left, and
// keeps the error.
func TestCancelIsFinal(t *testing.T) {
	t.Parallel()
	pool, _ := newDatabase(t)
	var runs atomic.Int32
	w := &actionWorker{run: func(context.Context, *river.Job[actionArgs]) error {
		runs.Add(1)
		return river.JobCancel(errors.New("Twilio 20404: The requested resource was not found"))
	}}
	c := newClient(t, pool, &river.Config{
		FetchPollInterval: pollInterval,
		Logger:            quietLogger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers(w),
	})
	res, err := c.Insert(context.Background(), actionArgs{ReservationSid: "WR-cancel"}, &river.InsertOpts{MaxAttempts: 25, UniqueOpts: uniqueForever})
	if err != nil {
		t.Fatal(err)
	}
	row := waitState(t, c, res.Job.ID, rivertype.JobStateCancelled, 10*time.Second)
	if n := runs.Load(); n != 1 || row.Attempt != 1 || row.FinalizedAt == nil {
		t.Errorf("cancelled after %d runs, attempt %d, finalized %v", n, row.Attempt, row.FinalizedAt)
	}
	if len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, "20404") {
		t.Errorf("errors of the cancelled job: %+v", row.Errors)
	}
}

// TestJobTimeout: the job's context ends after JobTimeout, a worker that honours it
// returns, and the attempt fails with the deadline; River will not take a rescue period
// shorter than the timeout.
func TestJobTimeout(t *testing.T) {
	t.Parallel()
	pool, _ := newDatabase(t)
	const timeout = 300 * time.Millisecond
	took := make(chan time.Duration, 1)
	w := &actionWorker{run: func(ctx context.Context, _ *river.Job[actionArgs]) error {
		start := time.Now()
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
		took <- time.Since(start)
		return ctx.Err()
	}}
	c := newClient(t, pool, &river.Config{
		FetchPollInterval: pollInterval,
		JobTimeout:        timeout,
		Logger:            quietLogger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers(w),
	})
	res, err := c.Insert(context.Background(), actionArgs{ReservationSid: "WR-timeout"}, &river.InsertOpts{MaxAttempts: 1, UniqueOpts: uniqueForever})
	if err != nil {
		t.Fatal(err)
	}
	row := waitState(t, c, res.Job.ID, rivertype.JobStateDiscarded, 10*time.Second)
	if d := <-took; d < timeout || d > timeout+5*time.Second {
		t.Errorf("the job's context ended after %v, want %v", d, timeout)
	}
	if len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, "deadline exceeded") {
		t.Errorf("errors of the timed-out job: %+v", row.Errors)
	}

	cfg := outboxConfig("", workers(&actionWorker{}))
	cfg.RescueStuckJobsAfter = cfg.JobTimeout - time.Second
	if _, err := river.NewClient(c.Driver(), cfg); err == nil {
		t.Error("River accepted a rescue period shorter than the job timeout")
	}
}

// TestDatabaseRestart: River's client outlives its database. While the server is down an
// insert fails at once (the outbox then falls back as when it cannot be written); once the
// server is back, the same client runs the jobs stored before and inserted after, with no
// restart of its own.
func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t, pgtest.Fsync(true))
	pool := newPool(t, srv.NewDatabase(t))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := migrateLocked(ctx, pool); err != nil {
		t.Fatal(err)
	}
	ran := make(chan string, 8)
	w := &actionWorker{snooze: true, run: func(_ context.Context, job *river.Job[actionArgs]) error {
		ran <- job.Args.ReservationSid
		return nil
	}}
	cfg := outboxConfig("restarted", workers(w))
	cfg.Logger = slog.New(slog.DiscardHandler) // it logs every lost connection, as it should
	c := newClient(t, pool, cfg)
	insert := func(ctx context.Context, sid string, due time.Time) error {
		_, err := c.Insert(ctx, actionArgs{ReservationSid: sid, DueAt: due}, &river.InsertOpts{UniqueOpts: uniqueForever})
		return err
	}
	expect := func(sid string, within time.Duration) {
		t.Helper()
		select {
		case got := <-ran:
			if got != sid {
				t.Fatalf("ran %s, want %s", got, sid)
			}
		case <-time.After(within):
			t.Fatalf("%s did not run within %v", sid, within)
		}
	}

	if err := insert(ctx, "WR-before", time.Time{}); err != nil {
		t.Fatal(err)
	}
	expect("WR-before", 10*time.Second)
	// Stored before the stop, due while the server is down.
	due := time.Now().Add(time.Second)
	if err := insert(ctx, "WR-pending", due); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	// The server stays down until the pending job is overdue; every insert meanwhile fails.
	failures := 0
	for time.Now().Before(due.Add(time.Second)) {
		downCtx, downCancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		err := insert(downCtx, fmt.Sprintf("WR-down-%d", failures), time.Time{})
		downCancel()
		if err == nil {
			t.Fatal("an insert with the database down succeeded")
		}
		if failures == 0 {
			t.Logf("with the database down, an insert failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
		failures++
		time.Sleep(50 * time.Millisecond)
	}

	srv.Resume(t)
	resumed := time.Now()
	expect("WR-pending", 30*time.Second)
	t.Logf("the overdue job ran %v after the server was back", time.Since(resumed).Round(time.Millisecond))
	start := time.Now()
	if err := insert(ctx, "WR-after", time.Time{}); err != nil {
		t.Fatalf("inserting after the restart: %v", err)
	}
	expect("WR-after", 30*time.Second)
	t.Logf("a job inserted after the restart ran %v after its insert", time.Since(start).Round(time.Millisecond))
}
