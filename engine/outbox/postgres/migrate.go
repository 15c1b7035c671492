package postgres

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// Schema is the outcome of a migration.
type Schema struct {
	// Applied are the River migration versions this run applied, none when the schema was
	// current already.
	Applied []int
	// Version is the schema's version now: River's newest migration.
	Version int
}

// Migrate creates or upgrades the outbox's schema (River's tables) in the database at url,
// under the advisory lock that Open takes, and returns. It is `reservist migrate`, for teams
// whose runtime database user may not change the schema.
func Migrate(ctx context.Context, url string) (Schema, error) {
	cfg, err := ParseURL(url)
	if err != nil {
		return Schema{}, err
	}
	cfg.MaxConns = 2 // the lock's connection and the migration's
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return Schema{}, err
	}
	defer pool.Close()
	applied, err := migrateLocked(ctx, pool)
	if err != nil {
		return Schema{}, err
	}
	migrator, err := newMigrator(pool)
	if err != nil {
		return Schema{}, err
	}
	all := migrator.AllVersions()
	return Schema{Applied: applied, Version: all[len(all)-1].Version}, nil
}

// migrateLocked runs River's migrations up while holding a session-level advisory lock on
// a connection of its own, so that replicas starting together on an empty database take
// turns: rivermigrate takes no lock itself, and two migrators at once collide. The lock is a
// session one rather than a transaction one because River runs each migration in its own
// transaction, on other connections of the pool (which needs at least two). A process that
// dies holding it releases it with its connection. It returns the versions it applied.
func migrateLocked(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return nil, err
	}
	defer func() {
		// Unlocked even when ctx has ended; a connection that cannot do it is closed, which
		// releases the lock too.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	migrator, err := newMigrator(pool)
	if err != nil {
		return nil, err
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("creating or upgrading the outbox schema: %w", err)
	}
	if err := migrateDecisions(ctx, conn); err != nil { // decisions.go
		return nil, err
	}
	var applied []int
	for _, v := range res.Versions {
		applied = append(applied, v.Version)
	}
	return applied, nil
}

func newMigrator(pool *pgxpool.Pool) (*rivermigrate.Migrator[pgx.Tx], error) {
	// River's migrator logs each migration; the caller says what was applied instead.
	return rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
}
