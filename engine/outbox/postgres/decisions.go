package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The decisions table remembers, for a while, which rule decided each reservation, so that
// whichever replica an Event callback reaches can count the reservation's outcome under it
// (engine/outcomes; docs/outbox.md). It sits beside the outbox's River tables and is
// created by the same migration, under the same lock.
//
// It is UNLOGGED: its rows are for metrics, written at the callback rate and deleted after
// minutes, and a table without write-ahead log costs a fraction as much to write. What
// PostgreSQL gives up for that — the rows after a crash of the server, and on a standby — is
// a few minutes of outcomes not counted.
const decisionsTable = "reservist_decisions"

const createDecisionsSQL = `CREATE UNLOGGED TABLE IF NOT EXISTS reservist_decisions (
	reservation_sid text PRIMARY KEY,
	rule text NOT NULL,
	decided_at timestamptz NOT NULL,
	outcome text
);
CREATE INDEX IF NOT EXISTS reservist_decisions_decided_at ON reservist_decisions (decided_at)`

// migrateDecisions creates the decisions table when it is not there. It looks first, so
// that a runtime user without the right to create tables, on a database `reservist
// migrate` prepared, passes: CREATE … IF NOT EXISTS checks that right even when the table
// exists.
func migrateDecisions(ctx context.Context, conn *pgxpool.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", decisionsTable).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, createDecisionsSQL); err != nil {
		return fmt.Errorf("creating the %s table: %w", decisionsTable, err)
	}
	return nil
}

// Decisions is the decisions table, as engine/outcomes uses it (outcomes.Store).
type Decisions struct{ pool *pgxpool.Pool }

// Decisions is the outbox's decisions table, on the outbox's connections.
func (o *Outbox) Decisions() *Decisions { return &Decisions{pool: o.pool} }

const recordDecisionsSQL = `INSERT INTO reservist_decisions (reservation_sid, rule, decided_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
ON CONFLICT (reservation_sid) DO NOTHING`

// RecordDecisions stores that sids[i] was decided by rules[i] at at[i], in one statement. A
// reservation stored already keeps its first decision, as the outbox keeps its first action.
func (d *Decisions) RecordDecisions(ctx context.Context, sids, rules []string, at []time.Time) error {
	if len(sids) == 0 {
		return nil
	}
	_, err := d.pool.Exec(ctx, recordDecisionsSQL, sids, rules, at)
	return err
}

// resolveOutcomesSQL marks the outcome of each reservation decided at or after $3 that has
// none yet, and returns the rule of each one found, with whether this statement marked it.
// Both parts read the same snapshot, so a row this statement marks shows in the first part
// only, and one marked before in the second only. Two replicas resolving one reservation
// at once: the second's UPDATE waits for the first's row lock, then finds the outcome set
// and marks nothing, so the reservation is counted once.
const resolveOutcomesSQL = `WITH events AS (
	SELECT * FROM unnest($1::text[], $2::text[]) AS e(sid, outcome)
), marked AS (
	UPDATE reservist_decisions d SET outcome = e.outcome FROM events e
	WHERE d.reservation_sid = e.sid AND d.outcome IS NULL AND d.decided_at >= $3
	RETURNING d.reservation_sid, d.rule
)
SELECT reservation_sid, rule, true FROM marked
UNION ALL
SELECT d.reservation_sid, d.rule, false FROM reservist_decisions d JOIN events e ON d.reservation_sid = e.sid
WHERE d.outcome IS NOT NULL AND d.decided_at >= $3`

// ResolveOutcomes marks that sids[i] ended with outcomes[i] and returns the rule that
// decided each ("" when no decision at or after since is stored) and whether this call was
// the first to mark it.
func (d *Decisions) ResolveOutcomes(ctx context.Context, since time.Time, sids, outcomes []string) (rules []string, first []bool, err error) {
	rules, first = make([]string, len(sids)), make([]bool, len(sids))
	if len(sids) == 0 {
		return rules, first, nil
	}
	rows, err := d.pool.Query(ctx, resolveOutcomesSQL, sids, outcomes, since)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	type found struct {
		rule  string
		first bool
	}
	byID := make(map[string]found, len(sids))
	for rows.Next() {
		var sid string
		var f found
		if err := rows.Scan(&sid, &f.rule, &f.first); err != nil {
			return nil, nil, err
		}
		if prev, ok := byID[sid]; !ok || f.first && !prev.first {
			byID[sid] = f
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	// A reservation named twice in one batch (an event delivered twice) is counted by its
	// first mention only.
	counted := make(map[string]bool, len(byID))
	for i, sid := range sids {
		f, ok := byID[sid]
		if !ok {
			continue
		}
		rules[i] = f.rule
		first[i] = f.first && !counted[sid]
		counted[sid] = counted[sid] || f.first
	}
	return rules, first, nil
}

// PruneDecisions deletes the decisions made before before.
func (d *Decisions) PruneDecisions(ctx context.Context, before time.Time) (int64, error) {
	tag, err := d.pool.Exec(ctx, "DELETE FROM reservist_decisions WHERE decided_at < $1", before)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
