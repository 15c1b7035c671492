package postgres

// These tests pin down what the PostgreSQL outbox relies on in River, against a real
// server: migrations under a lock, unique jobs per ReservationSid, how late scheduled jobs
// run, snooze and cancel, timeouts, and the rescue of a job held by a killed process. The
// figures they log are the ones in NOTES.md; the assertions hold the behaviour the backend
// is designed around, so that a River upgrade that changes it fails here first.

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/reservist/reservist/internal/pgtest"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	// Most of these tests wait for River's timers (a rescue takes 30-50 s) rather than use
	// the CPU, so more of them run at once than the default of one per core, unless -parallel
	// says otherwise: the package then takes about as long as its longest test.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "8")
	}
	os.Exit(pgtest.Main(m))
}

// quietLogger keeps River's own logging to errors: its warnings about a client stopping
// mid-job are what these tests provoke on purpose.
var quietLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// actionArgs is the shape of an outbox job: the reservation it acts on is its unique key,
// the rest describes the action and may differ between two callbacks for one reservation.
type actionArgs struct {
	ReservationSid string    `json:"reservation_sid" river:"unique"`
	Instruction    string    `json:"instruction"`
	DueAt          time.Time `json:"due_at"`
}

func (actionArgs) Kind() string { return "reservist_action" }

// uniqueForever and maxSnooze are the backend's (postgres.go): these tests pin River's
// behaviour under the settings the backend uses.

// actionWorker is the outbox worker as these tests need it: with snooze set it snoozes a
// job that is not due yet, in steps of at most maxSnooze; a due job goes to run.
type actionWorker struct {
	river.WorkerDefaults[actionArgs]
	snooze bool
	run    func(ctx context.Context, job *river.Job[actionArgs]) error
}

func (w *actionWorker) Work(ctx context.Context, job *river.Job[actionArgs]) error {
	if w.snooze {
		if d := time.Until(job.Args.DueAt); d > 0 {
			return river.JobSnooze(min(d, maxSnooze))
		}
	}
	return w.run(ctx, job)
}

func workers(w *actionWorker) *river.Workers {
	ws := river.NewWorkers()
	river.AddWorker(ws, w)
	return ws
}

// availableAtHook makes a job inserted for later available at once, with its run time as
// scheduled_at, instead of scheduled: River's producers only fetch available jobs whose
// scheduled_at has passed, so the job runs when due on whichever replica polls first,
// without waiting for the leader's scheduler to move it.
var availableAtHook = river.HookInsertBeginFunc(func(_ context.Context, p *rivertype.JobInsertParams) error {
	if p.State == rivertype.JobStateScheduled {
		p.State = rivertype.JobStateAvailable
	}
	return nil
})

// newDatabase gives the test a database of its own on the shared server, migrated, and
// returns a pool on it and its URL.
func newDatabase(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := pgtest.Shared(t).NewDatabase(t)
	pool := newPool(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := migrateLocked(ctx, pool); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return pool, url
}

func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 10
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migrateUnlocked is River's migration alone, without the backend's lock (migrateLocked),
// to show why the lock is needed.
func migrateUnlocked(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: quietLogger})
	if err != nil {
		return err
	}
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

// migrateWithLock is the backend's migrateLocked, its versions dropped.
func migrateWithLock(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrateLocked(ctx, pool)
	return err
}

// newClient makes a River client on pool and, when it has queues, starts it and stops it
// when the test ends.
func newClient(t *testing.T, pool *pgxpool.Pool, cfg *river.Config) *river.Client[pgx.Tx] {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		t.Fatalf("river.NewClient: %v", err)
	}
	if cfg.Queues == nil {
		return c
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("starting the client: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.StopAndCancel(ctx); err != nil {
			t.Errorf("stopping the client: %v", err)
		}
	})
	return c
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState waits for job id to reach state and returns it.
func waitState(t *testing.T, c *river.Client[pgx.Tx], id int64, state rivertype.JobState, timeout time.Duration) *rivertype.JobRow {
	t.Helper()
	var row *rivertype.JobRow
	waitFor(t, timeout, fmt.Sprintf("job %d becoming %s", id, state), func() (bool, error) {
		var err error
		row, err = c.JobGet(context.Background(), id)
		return err == nil && row.State == state, err
	})
	return row
}

// quantile returns the q-quantile (0..1) of ds by the nearest rank.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
