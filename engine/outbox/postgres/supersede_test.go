package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/testkit"
)

// TestSupersedeHoldsToRiversSchema: Supersede (supersede.go) writes River's job table the
// way River's own cancel does, as River reads it back, and decides by the claim each run
// makes before its call. Jobs held running by a replica stand for runs at every step: one
// unclaimed (a snooze step, or a run before its call) is cancelled, and its claim then
// fails; one claimed (in its call) is only marked, and the mark ends it once, when the
// worker finds it; another task's job is left alone.
func TestSupersedeHoldsToRiversSchema(t *testing.T) {
	t.Parallel()
	pool, url := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	started := make(chan int64, 3)
	ws := river.NewWorkers()
	river.AddWorker(ws, &blockWorker[job]{started: started})
	stuck := newClient(t, pool, &river.Config{
		FetchPollInterval:    pollInterval,
		JobTimeout:           -1,
		RescueStuckJobsAfter: time.Hour,
		Logger:               quietLogger,
		Queues:               map[string]river.QueueConfig{queueName: {MaxWorkers: 3}},
		Workers:              ws,
	})
	unclaimed, claimed, other := testAction(1), testAction(2), testAction(3)
	claimed.TaskSid = unclaimed.TaskSid // two reservations of one task
	ids := map[string]int64{}
	for _, a := range []outbox.Action{unclaimed, claimed, other} {
		res, err := stuck.Insert(ctx, newJob(a), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[a.ReservationSid] = res.Job.ID
	}
	for range 3 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the replica did not start the three jobs")
		}
	}
	if ok, err := claim(ctx, pool, ids[claimed.ReservationSid]); err != nil || !ok {
		t.Fatalf("claim of a running job = %v, %v; want true", ok, err)
	}

	logs := &testkit.LogBuffer{}
	ob := open(t, url, logs, nil)
	n, err := ob.Supersede(ctx, outbox.Supersession{TaskSid: unclaimed.TaskSid, Event: "task.canceled"})
	if err != nil || n != 1 {
		t.Fatalf("Supersede(task) = %d, %v; want 1: the claimed run is in its call", n, err)
	}

	row, err := stuck.JobGet(ctx, ids[unclaimed.ReservationSid])
	if err != nil {
		t.Fatal(err)
	}
	if row.State != rivertype.JobStateCancelled || row.FinalizedAt == nil || len(row.Errors) != 1 ||
		row.Errors[0].Error != supersededError || time.Since(row.Errors[0].At).Abs() > time.Minute {
		t.Errorf("the unclaimed job: state %s, finalized %v, errors %+v; want cancelled, finalized, one error %q",
			row.State, row.FinalizedAt, row.Errors, supersededError)
	}
	var md progress
	if err := json.Unmarshal(row.Metadata, &md); err != nil || md.Superseded != "task.canceled" {
		t.Errorf("the unclaimed job's metadata %s (%v); want %s task.canceled", row.Metadata, err, supersededKey)
	}
	if ok, err := claim(ctx, pool, ids[unclaimed.ReservationSid]); err != nil || ok {
		t.Errorf("claim of the superseded job = %v, %v; want false: no call", ok, err)
	}

	row, err = stuck.JobGet(ctx, ids[claimed.ReservationSid])
	if err != nil {
		t.Fatal(err)
	}
	md = progress{}
	if err := json.Unmarshal(row.Metadata, &md); err != nil || row.State != rivertype.JobStateRunning || md.Superseded != "task.canceled" {
		t.Errorf("the claimed job: state %s, metadata %s (%v); want running, marked", row.State, row.Metadata, err)
	}
	if ended, err := endSuperseded(ctx, pool, ids[claimed.ReservationSid]); err != nil || !ended {
		t.Errorf("endSuperseded of the marked job = %v, %v; want true", ended, err)
	}
	if ended, err := endSuperseded(ctx, pool, ids[claimed.ReservationSid]); err != nil || ended {
		t.Errorf("a second endSuperseded = %v, %v; want false: it is ended once", ended, err)
	}
	waitState(t, stuck, ids[claimed.ReservationSid], rivertype.JobStateCancelled, time.Second)

	if row, err := stuck.JobGet(ctx, ids[other.ReservationSid]); err != nil || row.State != rivertype.JobStateRunning || len(row.Errors) != 0 {
		t.Errorf("the other task's job is %v with errors %+v (%v); want it left running", row.State, row.Errors, err)
	}
	if n, err := ob.Supersede(ctx, outbox.Supersession{TaskSid: unclaimed.TaskSid, Event: "task.completed"}); err != nil || n != 0 {
		t.Errorf("a second Supersede(task) = %d, %v; want 0", n, err)
	}
	// Once per reservation: the cancelled job still refuses a second insert.
	if res, err := stuck.Insert(ctx, newJob(unclaimed), nil); err != nil || !res.UniqueSkippedAsDuplicate {
		t.Errorf("a second insert of the superseded reservation: %+v, %v; want skipped as a duplicate", res, err)
	}
	if recs := logs.Records("outbox action superseded"); len(recs) != 1 || recs[0]["reservation_sid"] != unclaimed.ReservationSid {
		t.Errorf("superseded lines %v; want the unclaimed job's alone", recs)
	}
}
