package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

// TestMigrateUp: River's migrations create its schema on an empty database, and a second
// run finds nothing to do.
func TestMigrateUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := newPool(t, pgtest.Shared(t).NewDatabase(t))
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		t.Fatalf("migrating an empty database: %v", err)
	}
	all := migrator.AllVersions()
	if len(res.Versions) != len(all) {
		t.Errorf("applied %d migrations, River has %d", len(res.Versions), len(all))
	}
	for _, table := range []string{"river_job", "river_leader", "river_migration", "river_queue"} {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("no table %s after migrating (%v)", table, err)
		}
	}
	res, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil || len(res.Versions) != 0 {
		t.Errorf("a second migration applied %d versions (%v), want none", len(res.Versions), err)
	}
	t.Logf("River's schema is at version %d", all[len(all)-1].Version)
}

// TestConcurrentMigrations: two replicas migrating one empty database at once.
//
// Without a lock they collide: on PostgreSQL 15 with River 0.51.2 every trial run here
// (3 runs of 5) failed one of the two, with one of `duplicate key value violates unique
// constraint "pg_type_typname_nsp_index"`, `relation "river_migration" already exists` or
// `type "river_job_state" already exists`: both create the same objects, each in its own
// transactions, and rivermigrate takes no lock. Under the advisory lock of migrateLocked
// the second waits for the first and then finds nothing left to do.
func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	const trials = 5
	srv := pgtest.Shared(t)

	t.Run("without a lock", func(t *testing.T) {
		collided := 0
		var example error
		for range trials {
			errs := raceTwo(t, srv.NewDatabase(t), migrateUnlocked)
			if errs[0] != nil || errs[1] != nil {
				collided++
				example = errors.Join(errs[0], errs[1])
			}
		}
		t.Logf("without a lock, %d of %d trials had a migrator fail; for example: %v", collided, trials, example)
	})

	t.Run("under the advisory lock", func(t *testing.T) {
		for trial := range trials {
			url := srv.NewDatabase(t)
			for i, err := range raceTwo(t, url, migrateWithLock) {
				if err != nil {
					t.Errorf("trial %d: migrator %d failed under the lock: %v", trial, i, err)
				}
			}
			migrator, err := rivermigrate.New(riverpgxv5.New(newPool(t, url)), &rivermigrate.Config{Logger: quietLogger})
			if err != nil {
				t.Fatal(err)
			}
			existing, err := migrator.ExistingVersions(context.Background())
			if err != nil || len(existing) != len(migrator.AllVersions()) {
				t.Errorf("trial %d: %d of %d migrations recorded (%v)", trial, len(existing), len(migrator.AllVersions()), err)
			}
		}
	})
}

// raceTwo runs migrate from two pools on the database at url at once, as two replicas
// rolled out together would, and returns what each returned.
func raceTwo(t *testing.T, url string, migrate func(context.Context, *pgxpool.Pool) error) [2]error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pools := [2]*pgxpool.Pool{newPool(t, url), newPool(t, url)}
	var errs [2]error
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, pool := range pools {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			// Each has a connection open before either starts, so that neither gets a
			// head start from connecting.
			errs[i] = pool.Ping(ctx)
			ready.Done()
			<-start
			if errs[i] == nil {
				errs[i] = migrate(ctx, pool)
			}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// TestMigrateAheadOfTime: `reservist migrate` (Migrate) as the database's owner lets a
// runtime user that may only read and write rows run the outbox; without it, that user's
// Open fails saying to run it.
func TestMigrateAheadOfTime(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	owner := srv.NewDatabase(t)
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatal(err)
	}
	role := strings.TrimPrefix(u.Path, "/") + "_rw"
	admin := newPool(t, owner)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role) })
	runtime := strings.Replace(owner, "postgres@", role+"@", 1)

	// Not migrated: the runtime user cannot create the tables, and is told what to do.
	_, err = Open(runtime, Options{Carrier: outbox.NewCarrier(outbox.CarrierOptions{})})
	if err == nil || !strings.Contains(err.Error(), "reservist migrate") {
		t.Fatalf("Open as a user that may not create tables, before any migration: %v; want an error naming reservist migrate", err)
	}

	schema, err := Migrate(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(schema.Applied) == 0 || schema.Applied[len(schema.Applied)-1] != schema.Version {
		t.Errorf("Migrate on an empty database = %+v, want every version up to the current one", schema)
	}
	again, err := Migrate(ctx, owner)
	if err != nil || len(again.Applied) != 0 || again.Version != schema.Version {
		t.Errorf("Migrate again = %+v (%v), want nothing applied, version %d", again, err, schema.Version)
	}
	for _, grant := range []string{
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + role,
	} {
		if _, err := admin.Exec(ctx, grant); err != nil {
			t.Fatal(err)
		}
	}
	ob := open(t, runtime, &testkit.LogBuffer{}, nil)
	if err := ob.Ready(); err != nil {
		t.Fatalf("Ready as the runtime user after the migration: %v", err)
	}
	if queued, err := ob.Put(ctx, testAction(1)); err != nil || !queued {
		t.Fatalf("Put as the runtime user: %v, %v", queued, err)
	}
	errc := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { errc <- ob.Run(runCtx) }()
	waitFor(t, 20*time.Second, "the action carried out by the runtime user", func() (bool, error) {
		st, err := ob.Stats(ctx)
		return err == nil && st.Depth == 0, err
	})
	stop()
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
}
