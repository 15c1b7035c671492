package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/reservist/reservist/internal/pgtest"
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
