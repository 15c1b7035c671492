package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

// testAction is an accept for reservation n, due now, with a two-minute deadline.
func testAction(n uint64) outbox.Action {
	now := time.Now()
	return outbox.Action{
		ReservationSid: taskroutertest.NewSid("WR", n),
		TaskSid:        taskroutertest.NewSid("WT", n),
		WorkspaceSid:   taskroutertest.NewSid("WS", 1),
		Rule:           "r",
		Params:         outbox.Params{"ReservationStatus": "accepted", "DequeueStatusCallbackEvent": []string{"a", "b"}, "Timeout": 30, "CallAccept": true},
		Received:       now,
		Due:            now,
		Deadline:       now.Add(2 * time.Minute),
	}
}

// open opens an outbox on url with a dry-run carrier logging into logs, and closes it when
// the test ends.
func open(t *testing.T, url string, logs *testkit.LogBuffer, metrics *outbox.Metrics) *Outbox {
	t.Helper()
	carrier := outbox.NewCarrier(outbox.CarrierOptions{
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: metrics,
	})
	ob, err := Open(url, Options{Carrier: carrier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

// The store's health lines (outbox.StoreHealth).
const (
	storeFailing = "outbox store failing: decisions that go by REST are answered synchronously (503 with a delay) and /readyz is 503 until it works again"
	storeWorks   = "outbox store works again"
)

// TestJobIsTheAction: a job's args are the Action's JSON, nothing more, and read back as the
// Action that was put.
func TestJobIsTheAction(t *testing.T) {
	a := testAction(1)
	got, err := json.Marshal(newJob(a))
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var g, w map[string]any
	if err := errors.Join(json.Unmarshal(got, &g), json.Unmarshal(want, &w)); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("the job's args are not the Action's JSON (-action +job):\n%s", d)
	}
	var back job
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a, back.action()); d != "" {
		t.Errorf("the Action read back (-put +read):\n%s", d)
	}
}

// otherArgs is a job of another kind in the outbox's queue: an application's own River jobs
// in the same database.
type otherArgs struct {
	N int `json:"n"`
}

func (otherArgs) Kind() string { return "someone_elses" }

type blockWorker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	started chan<- int64
}

func (w *blockWorker[T]) Work(ctx context.Context, j *river.Job[T]) error {
	w.started <- j.ID
	<-ctx.Done()
	return ctx.Err()
}

// TestRescueHoldsToRiversSchema: the rescue pass (rescue.go) writes River's job table the way
// River's own rescuer does, as River itself reads it back: a stuck outbox job becomes
// available with the rescue recorded as an attempt error and in its metadata, keeps its
// attempt, and is run again by another replica; a job of another kind, or one not running
// long enough, is left alone; and a second pass finds nothing to do. A job held in a run that
// began before it was due (its replica died while snoozing it) is taken back after the
// shorter wait, a call only after the longer one. If River's table changes, this fails.
func TestRescueHoldsToRiversSchema(t *testing.T) {
	t.Parallel()
	pool, _ := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A replica stuck in its calls: workers that never return until the test ends, and no
	// rescue of River's own within the test.
	started := make(chan int64, 3)
	ws := river.NewWorkers()
	river.AddWorker(ws, &blockWorker[job]{started: started})
	river.AddWorker(ws, &blockWorker[otherArgs]{started: started})
	stuck := newClient(t, pool, &river.Config{
		FetchPollInterval:    pollInterval,
		JobTimeout:           -1,
		RescueStuckJobsAfter: time.Hour,
		Logger:               quietLogger,
		Queues:               map[string]river.QueueConfig{queueName: {MaxWorkers: 3}},
		Workers:              ws,
	})
	ours, err := stuck.Insert(ctx, newJob(testAction(1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := stuck.Insert(ctx, otherArgs{N: 1}, &river.InsertOpts{Queue: queueName})
	if err != nil {
		t.Fatal(err)
	}
	waiting := testAction(2)
	waiting.Due = waiting.Received.Add(time.Hour)
	snoozing, err := stuck.Insert(ctx, newJob(waiting), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the stuck replica did not start the three jobs")
		}
	}
	before, err := stuck.JobGet(ctx, ours.Job.ID)
	if err != nil || before.State != rivertype.JobStateRunning {
		t.Fatalf("our job is %v (%v), want running", before.State, err)
	}

	const after = time.Second
	if n, err := rescue(ctx, pool, after, after); err != nil || n != 0 {
		t.Fatalf("a pass before the jobs ran %v rescued %d (%v), want 0", after, n, err)
	}
	// Calls rescued after an hour, snooze steps after a second: the waiting job only.
	var n int64
	waitFor(t, 10*time.Second, "the rescue of the job held while it waited", func() (bool, error) {
		n, err = rescue(ctx, pool, time.Hour, after)
		return n > 0, err
	})
	if n != 1 {
		t.Errorf("rescued %d jobs, want the waiting one", n)
	}
	if row, err := stuck.JobGet(ctx, snoozing.Job.ID); err != nil || row.State != rivertype.JobStateAvailable || len(row.Errors) != 1 {
		t.Errorf("the job held while it waited is %v with errors %+v (%v), want available with the rescue", row.State, row.Errors, err)
	}
	// Now calls too.
	if n, err = rescue(ctx, pool, after, after); err != nil || n != 1 {
		t.Errorf("rescued %d (%v), want the call", n, err)
	}
	if n, err := rescue(ctx, pool, after, after); err != nil || n != 0 {
		t.Errorf("a second pass rescued %d (%v), want 0", n, err)
	}

	row, err := stuck.JobGet(ctx, ours.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.State != rivertype.JobStateAvailable || row.Attempt != before.Attempt || row.ScheduledAt.After(time.Now()) {
		t.Errorf("after the rescue: state %s, attempt %d (was %d), scheduled %v; want available now, attempt kept",
			row.State, row.Attempt, before.Attempt, row.ScheduledAt)
	}
	if len(row.Errors) != 1 || row.Errors[0].Error != rescueError || row.Errors[0].Attempt != before.Attempt ||
		time.Since(row.Errors[0].At).Abs() > time.Minute {
		t.Errorf("the rescued job's errors: %+v, want one at attempt %d saying %q", row.Errors, before.Attempt, rescueError)
	}
	var md struct {
		Rescues int `json:"river:rescue_count"`
	}
	if err := json.Unmarshal(row.Metadata, &md); err != nil || md.Rescues != 1 {
		t.Errorf("the rescued job's metadata %s (%v), want river:rescue_count 1", row.Metadata, err)
	}
	other, err := stuck.JobGet(ctx, theirs.Job.ID)
	if err != nil || other.State != rivertype.JobStateRunning || len(other.Errors) != 0 {
		t.Errorf("the other kind's job is %v with errors %+v (%v), want it left running", other.State, other.Errors, err)
	}

	// Another replica runs it again, as the second attempt.
	type run struct{ attempt, errors int }
	runs := make(chan run, 1)
	ws2 := river.NewWorkers()
	river.AddWorker(ws2, river.WorkFunc(func(_ context.Context, j *river.Job[job]) error {
		if j.ID == ours.Job.ID {
			runs <- run{j.Attempt, len(j.Errors)}
		}
		return nil
	}))
	newClient(t, pool, &river.Config{FetchPollInterval: pollInterval, Logger: quietLogger,
		Queues: map[string]river.QueueConfig{queueName: {MaxWorkers: 1}}, Workers: ws2})
	select {
	case r := <-runs:
		if r.attempt != before.Attempt+1 || r.errors != 1 {
			t.Errorf("run again as attempt %d with %d errors, want attempt %d with 1", r.attempt, r.errors, before.Attempt+1)
		}
	case <-ctx.Done():
		t.Fatal("the rescued job was not run again")
	}
	waitState(t, stuck, ours.Job.ID, rivertype.JobStateCompleted, 10*time.Second)
}

// TestStatsCountsTheOutboxOnly: Stats counts the outbox's pending jobs, not another kind's
// in the same database, nor finished ones.
func TestStatsCountsTheOutboxOnly(t *testing.T) {
	t.Parallel()
	pool, url := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ob := open(t, url, &testkit.LogBuffer{}, nil)
	oldest := testAction(1)
	oldest.Received = oldest.Received.Add(-time.Minute)
	for _, a := range []outbox.Action{oldest, testAction(2)} {
		if _, err := ob.Put(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	inserter := newClient(t, pool, &river.Config{Workers: workers(&actionWorker{}), SkipUnknownJobCheck: true})
	if _, err := inserter.Insert(ctx, otherArgs{N: 1}, &river.InsertOpts{Queue: queueName}); err != nil {
		t.Fatal(err)
	}
	st, err := ob.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth != 2 || st.Oldest.Sub(oldest.Received).Abs() > time.Millisecond {
		t.Errorf("Stats = %+v, want depth 2, oldest %v", st, oldest.Received)
	}
	if _, err := pool.Exec(ctx, "UPDATE river_job SET state = 'completed', finalized_at = now() WHERE args->>'reservation_sid' = $1",
		oldest.ReservationSid); err != nil {
		t.Fatal(err)
	}
	if st, err = ob.Stats(ctx); err != nil || st.Depth != 1 {
		t.Errorf("Stats with one finished = %+v (%v), want depth 1", st, err)
	}
}

// TestDatabaseGoneAndBack: a database that cannot be reached at Open leaves the outbox
// unready, not failed; it becomes ready by itself once the database is there, carries out
// what is put, goes unready again when the database goes away mid-run (Put failing at
// once), and recovers again. Reservist's own lines say what happened, once each, and River's
// per-poll errors are held back while they would only repeat it.
func TestDatabaseGoneAndBack(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	srv.Stop(t)

	logs := &testkit.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the outbox's log:\n%s", logs)
		}
	})
	metrics := outbox.NewMetrics()
	ob := open(t, url, logs, metrics)
	if err := ob.Ready(); !errors.Is(err, outbox.ErrUnreachable) {
		t.Fatalf("Ready with the database down: %v, want ErrUnreachable", err)
	}
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg); err != nil {
		t.Fatal(err)
	}
	storeErrors := func(op string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "reservist_outbox_store_errors_total" && m.GetLabel()[0].GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no reservist_outbox_store_errors_total{op=%q}", op)
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := ob.Put(ctx, testAction(1)); !errors.Is(err, outbox.ErrUnreachable) {
		t.Errorf("Put with the database down: %v, want ErrUnreachable", err)
	} else if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Put with the database known down took %v, want it to fail at once", took)
	}
	// Counted as the embedded backend counts its store's failures.
	if put, check := storeErrors(outbox.StoreOpPut), storeErrors(outbox.StoreOpCheck); put != 1 || check < 1 {
		t.Errorf("store errors: put %v, check %v; want 1 and at least 1", put, check)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- ob.Run(runCtx) }()
	defer func() {
		stopRun()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	ready := func(what string) {
		t.Helper()
		resumed := time.Now()
		waitFor(t, 20*time.Second, what, func() (bool, error) { return ob.Ready() == nil, nil })
		t.Logf("%s %v after the database was back", what, time.Since(resumed).Round(time.Millisecond))
	}
	carried := func(n uint64) {
		t.Helper()
		if _, err := ob.Put(ctx, testAction(n)); err != nil {
			t.Fatalf("Put once ready: %v", err)
		}
		waitFor(t, 20*time.Second, "the action carried out", func() (bool, error) {
			st, err := ob.Stats(ctx)
			return err == nil && st.Depth == 0, nil
		})
	}
	srv.Resume(t)
	ready("ready")
	carried(1)

	srv.Stop(t)
	waitFor(t, 20*time.Second, "unready with the database gone", func() (bool, error) {
		return errors.Is(ob.Ready(), outbox.ErrUnreachable), nil
	})
	if _, err := ob.Put(ctx, testAction(2)); err == nil {
		t.Error("Put with the database gone succeeded")
	}
	srv.Resume(t)
	ready("ready again")
	carried(3)

	for msg, want := range map[string]int{
		storeFailing:                        2,
		storeWorks:                          2,
		"outbox schema created or upgraded": 1,
	} {
		if got := len(logs.Records(msg)); got != want {
			t.Errorf("%d lines %q, want %d", got, msg, want)
		}
	}
	// River logs every failed poll; from reservist's line saying the database is gone to its
	// line saying it is back, none of that is shown.
	quiet := true // the database was down at Open
	for l := range strings.Lines(logs.String()) {
		switch {
		case strings.Contains(l, `"msg":"`+storeFailing+`"`):
			quiet = true
		case strings.Contains(l, `"msg":"`+storeWorks+`"`):
			quiet = false
		case quiet && strings.Contains(l, `"component":"river"`):
			t.Errorf("River logged while reservist had said the database is unreachable: %s", l)
		}
	}
}

// TestRefusedAtStart: a database that refuses reservist (no such database, no such user)
// fails Open with the server's reason, since waiting will not help.
func TestRefusedAtStart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	for name, url := range map[string]string{
		"no such database": srv.DatabaseURL("no_such_database"),
		"no such user":     strings.Replace(srv.URL(), "postgres@", "nobody@", 1),
	} {
		carrier := outbox.NewCarrier(outbox.CarrierOptions{})
		ob, err := Open(url, Options{Carrier: carrier})
		if err == nil {
			ob.Close()
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		if !Refused(err) {
			t.Errorf("%s: %v is not taken for a refusal", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestRedacted(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:s3cret@db:5432/reservist?sslmode=verify-full", "postgres://u:xxxxx@db:5432/reservist?sslmode=verify-full"},
		{"postgres://u@db/reservist", "postgres://u@db/reservist"},
		{"postgresql://db/reservist?password=s3cret&sslpassword=s3cret", "postgresql://db/reservist?password=xxxxx&sslpassword=xxxxx"},
		{"postgres://u:s3cret@db:bad%/x", "postgres://…"},
	} {
		if got := Redacted(tc.in); got != tc.want {
			t.Errorf("Redacted(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseURL: libpq's variables fill in what the URL leaves out; errors never show the
// password.
func TestParseURL(t *testing.T) {
	t.Setenv("PGPASSWORD", "from-the-environment")
	cfg, err := ParseURL("postgres://reservist@db.example.com/outbox")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnConfig.Password != "from-the-environment" || cfg.MaxConns != defaultMaxConns {
		t.Errorf("password %q, pool %d; want PGPASSWORD's and %d", cfg.ConnConfig.Password, cfg.MaxConns, defaultMaxConns)
	}
	if cfg, err := ParseURL("postgres://db/outbox?pool_max_conns=3"); err != nil || cfg.MaxConns != 3 {
		t.Errorf("pool_max_conns=3: %v (%v), want the URL's", cfg, err)
	}
	for _, bad := range []string{"postgres://u:s3cret@db:bad/x", "postgres://u:s3cret@db/x?sslmode=nope", "mysql://u:s3cret@db/x"} {
		_, err := ParseURL(bad)
		if err == nil {
			t.Errorf("ParseURL(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseURL(%q): %v shows the password", bad, err)
		}
	}
}

// TestSchemaOfItsOwn: search_path in the URL puts River's tables in a schema of their own,
// and the outbox works there, beside an application's own tables.
func TestSchemaOfItsOwn(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := newPool(t, url)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA reservist"); err != nil {
		t.Fatal(err)
	}
	ob := open(t, url+"&search_path=reservist", &testkit.LogBuffer{}, nil)
	if _, err := ob.Put(ctx, testAction(1)); err != nil {
		t.Fatal(err)
	}
	if st, err := ob.Stats(ctx); err != nil || st.Depth != 1 {
		t.Errorf("Stats = %+v (%v), want depth 1", st, err)
	}
	var schema string
	if err := admin.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'river_job'").Scan(&schema); err != nil || schema != "reservist" {
		t.Errorf("river_job is in schema %q (%v), want reservist", schema, err)
	}
}

// TestPutHonoursItsDeadline: a Put the database does not answer (the job table locked by
// another session) fails when its context ends, or after the Put timeout when it has no
// deadline, so that the callback is answered as if the outbox could not be written.
func TestPutHonoursItsDeadline(t *testing.T) {
	t.Parallel()
	pool, url := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	carrier := outbox.NewCarrier(outbox.CarrierOptions{})
	const putTimeout = 300 * time.Millisecond
	ob, err := Open(url, Options{Carrier: carrier, PutTimeout: putTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "LOCK TABLE river_job IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		deadline time.Duration // 0: none
		want     time.Duration
	}{
		{"its own deadline", 200 * time.Millisecond, 200 * time.Millisecond},
		{"no deadline", 0, putTimeout},
	} {
		putCtx, cancelPut := context.Background(), context.CancelFunc(func() {})
		if tc.deadline > 0 {
			putCtx, cancelPut = context.WithTimeout(putCtx, tc.deadline)
		}
		start := time.Now()
		_, err := ob.Put(putCtx, testAction(1))
		took := time.Since(start)
		cancelPut()
		if err == nil {
			t.Errorf("%s: Put into a locked table succeeded", tc.name)
		}
		if took < tc.want || took > tc.want+2*time.Second {
			t.Errorf("%s: Put failed after %v, want about %v", tc.name, took, tc.want)
		}
	}
}

// countSender counts the calls per reservation and takes every one.
type countSender struct {
	mu    sync.Mutex
	calls map[string]int
}

func (s *countSender) Send(_ context.Context, a outbox.Action) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[a.ReservationSid]++
	return nil
}

func (s *countSender) count(sid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[sid]
}

// TestWithdrawal: the job of a Put that failed but whose insert committed after all (here
// inserted as that Put would have, with its token) is withdrawn: cancelled, never carried
// out, and its reservation still known. A failed Put has its job looked for.
func TestWithdrawal(t *testing.T) {
	t.Parallel()
	_, url := newDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sender := &countSender{}
	logs := &testkit.LogBuffer{}
	ob, err := Open(url, Options{Carrier: outbox.NewCarrier(outbox.CarrierOptions{Sender: sender,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()

	late := testAction(1)
	const token = "a-failed-put"
	res, err := ob.client.Insert(ctx, newJob(late), &river.InsertOpts{Metadata: putMetadata(token)})
	if err != nil {
		t.Fatal(err)
	}
	ob.withdrawer.add(late, token)
	waitState(t, ob.client, res.Job.ID, rivertype.JobStateCancelled, 20*time.Second)
	waitFor(t, 10*time.Second, "the withdrawal's log line", func() (bool, error) {
		return len(logs.Records("outbox withdrew an action stored after its callback was answered without it")) == 1, nil
	})
	if queued, err := ob.Put(ctx, late); err != nil || queued {
		t.Errorf("Put of the withdrawn reservation: queued %v (%v), want it known", queued, err)
	}

	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- ob.Run(runCtx) }()
	next := testAction(2)
	if _, err := ob.Put(ctx, next); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the next action carried out", func() (bool, error) { return sender.count(next.ReservationSid) == 1, nil })
	stop()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := sender.count(late.ReservationSid); n != 0 {
		t.Errorf("the withdrawn action was sent %d times", n)
	}

	// A Put that fails has its job looked for.
	failed, cancelPut := context.WithCancel(ctx)
	cancelPut()
	if _, err := ob.Put(failed, testAction(3)); err == nil {
		t.Fatal("Put with its context ended succeeded")
	}
	ob.withdrawer.mu.Lock()
	pending := len(ob.withdrawer.pending)
	ob.withdrawer.mu.Unlock()
	if pending != 1 {
		t.Errorf("%d withdrawals pending after a failed Put, want 1", pending)
	}
}
