package outcomes

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/postgres"
	"github.com/reservist/reservist/internal/pgtest"
	"github.com/reservist/reservist/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openShared opens the shared outbox on url, which creates the decisions table, and
// returns its decisions.
func openShared(t *testing.T, url string) *postgres.Decisions {
	t.Helper()
	ob, err := postgres.Open(url, postgres.Options{Carrier: outbox.NewCarrier(outbox.CarrierOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	if err := ob.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	return ob.Decisions()
}

// TestSharedReplicas: two replicas on one database. A decision recorded on A is counted
// under its rule when the event reaches B, even when the event comes before A's batch is
// written; an event delivered to both replicas is counted once; an event for a reservation
// nobody decided is unmatched after its retry.
func TestSharedReplicas(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	replica := func() *Tracker {
		tr := New(Options{Window: 12 * time.Minute, Store: openShared(t, url), RetryAfter: 500 * time.Millisecond})
		run(t, tr)
		return tr
	}
	a, b := replica(), replica()
	now := time.Now()
	a.Record(wr(1), "voice", now)
	a.Record(wr(2), "chat", now)
	// The event reaches B at once, very likely before A's batch is written: its retry finds it.
	b.Outcome(wr(1), Timeout)
	testkit.Eventually(t, "B counts A's decision", func() bool { return outcomes(b, "voice", Timeout) == 1 })

	// Delivered twice, to both replicas: counted once, by whichever marked it first.
	a.Outcome(wr(2), Accepted)
	b.Outcome(wr(2), Accepted)
	b.Outcome(wr(3), Rescinded) // nobody decided it
	testkit.Eventually(t, "the unknown reservation unmatched", func() bool { return unmatched(b, Rescinded) == 1 })
	testkit.Eventually(t, "the accepted counted", func() bool {
		return outcomes(a, "chat", Accepted)+outcomes(b, "chat", Accepted) >= 1
	})
	if got := outcomes(a, "chat", Accepted) + outcomes(b, "chat", Accepted); got != 1 {
		t.Errorf("an outcome delivered to both replicas counted %v times; want 1", got)
	}
	for _, tr := range []*Tracker{a, b} {
		if got := testutil.ToFloat64(tr.metrics.dropped.WithLabelValues(DroppedStore)); got != 0 {
			t.Errorf("dropped{store} = %v; want 0", got)
		}
		if got := tr.Len(); got != 0 {
			t.Errorf("Len() = %d with a store; want 0: decisions are in the database", got)
		}
	}
}

// TestSharedStore holds the decisions table to its contract: first decision kept, outcomes
// marked once, decisions before since not found, prune by age.
func TestSharedStore(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	d := openShared(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	sids := []string{wr(1), wr(2), wr(1)}
	if err := d.RecordDecisions(ctx, sids, []string{"voice", "chat", "other"}, []time.Time{t0, t0.Add(time.Minute), t0}); err != nil {
		t.Fatal(err)
	}
	rules, first, err := d.ResolveOutcomes(ctx, t0, []string{wr(1), wr(1), wr(2), wr(3)}, []string{Timeout, Timeout, Accepted, Canceled})
	if err != nil {
		t.Fatal(err)
	}
	wantRules, wantFirst := []string{"voice", "voice", "chat", ""}, []bool{true, false, true, false}
	for i := range wantRules {
		if rules[i] != wantRules[i] || first[i] != wantFirst[i] {
			t.Errorf("ResolveOutcomes[%d] = %q, %v; want %q, %v", i, rules[i], first[i], wantRules[i], wantFirst[i])
		}
	}
	rules, first, err = d.ResolveOutcomes(ctx, t0, []string{wr(2)}, []string{Accepted})
	if err != nil || rules[0] != "chat" || first[0] {
		t.Errorf("ResolveOutcomes again = %q, %v, %v; want chat, not first", rules, first, err)
	}
	rules, _, err = d.ResolveOutcomes(ctx, t0.Add(30*time.Second), []string{wr(1)}, []string{Timeout})
	if err != nil || rules[0] != "" {
		t.Errorf("ResolveOutcomes since after the decision = %q, %v; want not found", rules, err)
	}
	n, err := d.PruneDecisions(ctx, t0.Add(30*time.Second))
	if err != nil || n != 1 {
		t.Errorf("PruneDecisions = %d, %v; want 1", n, err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var left int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM reservist_decisions").Scan(&left); err != nil || left != 1 {
		t.Errorf("rows after the prune: %d, %v; want 1", left, err)
	}
}

// TestSharedMigrate: `reservist migrate` creates the decisions table, unlogged. (That a
// runtime user who may not create tables then opens the outbox, the decisions table
// present, is engine/outbox/postgres's TestMigrateAheadOfTime.)
func TestSharedMigrate(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var kind string
	if err := pool.QueryRow(ctx, "SELECT relpersistence FROM pg_class WHERE relname = 'reservist_decisions'").Scan(&kind); err != nil || kind != "u" {
		t.Errorf("reservist_decisions after Migrate: persistence %q, %v; want an unlogged table", kind, err)
	}
}
