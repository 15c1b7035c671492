package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reservist/reservist/engine/outbox"
)

// TestDelayLateness measures how late delayed jobs run, by how they are inserted and how
// often the client polls. Each mode gets its own database and client; 50 jobs due in
// 200 ms and 50 due in 2 s are inserted one pair every 100 ms, so that the 5 s cycle of
// River's scheduler is sampled evenly.
//
// River (0.51.2) moves scheduled jobs to available from the leader only, every 5 s, taking
// those due within the next 5 s and leaving them to the producers' fetch, which takes
// available jobs whose time has come, on a notification of new jobs or every
// FetchPollInterval (1 s by default). So a scheduled job runs up to 5 s late when the
// scheduler's pass falls after its due time, and up to FetchPollInterval late otherwise;
// the scheduler's interval is not configurable. A job kept available instead (inserted due
// now and snoozed until due, or inserted available with its run time) runs at most
// FetchPollInterval late, and needs no leader.
//
// Measured on two cores, p50 / max of the lateness over 50 jobs, without the race
// detector (with it, and every test of the package at once, the figures were within a
// few tens of milliseconds of these):
//
//	mode                              200 ms delay        2 s delay
//	scheduled, defaults               2.49 s / 4.89 s     1.03 s / 3.08 s
//	scheduled, poll 100 ms            2.52 s / 4.92 s     0.92 s / 3.12 s
//	snoozed until due, defaults       77 ms / 1.05 s      100 ms / 1.05 s
//	snoozed until due, poll 100 ms    21 ms / 137 ms      31 ms / 88 ms
//	available at due, poll 100 ms     21 ms / 43 ms       33 ms / 91 ms
//
// A shorter poll does nothing for scheduled jobs, since the scheduler is what they wait
// for. The snoozed ones with the default poll do better than its 1 s at the median only
// because the steady inserts of this test wake the producer; on an idle outbox they run up
// to 1 s late. The backend inserts due now and snoozes until due, in steps below 5 s, with
// a 100 ms poll: River's documented behaviour, independent of the leader (see
// TestDueAfterLeaderKilled), and the same mechanism that waits out a Retry-After.
func TestDelayLateness(t *testing.T) {
	t.Parallel()
	const pairs = 50
	delays := []time.Duration{200 * time.Millisecond, 2 * time.Second}
	for _, m := range []struct {
		name   string
		poll   time.Duration // 0: River's default
		insert string        // scheduled, snoozed or available-at
	}{
		{"scheduled, defaults", 0, "scheduled"},
		{"scheduled, poll 100 ms", pollInterval, "scheduled"},
		{"snoozed until due, defaults", 0, "snoozed"},
		{"snoozed until due, poll 100 ms", pollInterval, "snoozed"},
		{"available at due, poll 100 ms", pollInterval, "available-at"},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := newDatabase(t)
			var mu sync.Mutex
			late := map[time.Duration][]time.Duration{}
			done := make(chan struct{}, 2*pairs)
			w := &actionWorker{snooze: m.insert == "snoozed", run: func(_ context.Context, job *river.Job[actionArgs]) error {
				d := time.Since(job.Args.DueAt)
				delay, err := time.ParseDuration(job.Args.Instruction)
				if err != nil {
					return err
				}
				mu.Lock()
				late[delay] = append(late[delay], d)
				mu.Unlock()
				done <- struct{}{}
				return nil
			}}
			cfg := &river.Config{
				FetchPollInterval: m.poll,
				Logger:            quietLogger,
				Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 20}},
				Workers:           workers(w),
			}
			if m.insert == "available-at" {
				cfg.Hooks = []rivertype.Hook{availableAtHook}
			}
			c := newClient(t, pool, cfg)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := range pairs {
				<-tick.C
				for _, delay := range delays {
					due := time.Now().Add(delay)
					opts := &river.InsertOpts{UniqueOpts: uniqueForever}
					if m.insert != "snoozed" {
						opts.ScheduledAt = due
					}
					_, err := c.Insert(ctx, actionArgs{
						ReservationSid: fmt.Sprintf("WR%d-%v", i, delay),
						Instruction:    delay.String(),
						DueAt:          due,
					}, opts)
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			for range 2 * pairs {
				select {
				case <-done:
				case <-ctx.Done():
					t.Fatalf("not every job ran: %v", ctx.Err())
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, delay := range delays {
				ds := late[delay]
				if len(ds) != pairs {
					t.Errorf("%d jobs with a %v delay ran, want %d", len(ds), delay, pairs)
				}
				for _, d := range ds {
					if d < 0 {
						t.Errorf("a job with a %v delay ran %v early", delay, -d)
					}
				}
				t.Logf("%-32s delay %-6v late p50 %-8v max %v", m.name, delay,
					quantile(ds, 0.5).Round(time.Millisecond), quantile(ds, 1).Round(time.Millisecond))
				// The modes the backend may use must hold their bound even on a loaded machine.
				if m.poll == pollInterval && m.insert != "scheduled" {
					if max := quantile(ds, 1); max > 10*pollInterval {
						t.Errorf("%s: a job with a %v delay ran %v late, want at most %v", m.name, delay, max, 10*pollInterval)
					}
				}
			}
		})
	}
}

// nopSender takes every call at once, so that only the outbox limits the rate.
type nopSender struct{}

func (nopSender) Send(context.Context, outbox.Action) error { return nil }

// TestCarryOutRate: how fast one replica carries out a backlog (actions stored while it was
// down, or a burst), by River's FetchCooldown, with the default 8 workers and a TaskRouter
// that answers at once. A fetch takes as many due jobs as there are free workers, and the
// next fetch waits for the cooldown, so River's default of 100 ms caps a replica at
// 8 per 100 ms. The figures are in NOTES.md.
func TestCarryOutRate(t *testing.T) {
	t.Parallel()
	const n = 400
	rates := map[time.Duration]float64{}
	var mu sync.Mutex
	t.Run("cooldown", func(t *testing.T) {
		for _, cooldown := range []time.Duration{100 * time.Millisecond, fetchCooldown} {
			t.Run(cooldown.String(), func(t *testing.T) {
				t.Parallel()
				_, url := newDatabase(t)
				ob, err := Open(url, Options{Carrier: outbox.NewCarrier(outbox.CarrierOptions{Sender: nopSender{}}), fetchCooldown: cooldown})
				if err != nil {
					t.Fatal(err)
				}
				defer ob.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				for i := range n {
					if _, err := ob.Put(ctx, testAction(uint64(i+1))); err != nil {
						t.Fatal(err)
					}
				}
				start := time.Now()
				runCtx, stop := context.WithCancel(ctx)
				defer stop()
				go ob.Run(runCtx)
				waitFor(t, 50*time.Second, "the backlog carried out", func() (bool, error) {
					st, err := ob.Stats(ctx)
					return err == nil && st.Depth == 0, nil
				})
				rate := n / time.Since(start).Seconds()
				t.Logf("FetchCooldown %v: %d actions carried out at %.0f/s", cooldown, n, rate)
				mu.Lock()
				rates[cooldown] = rate
				mu.Unlock()
			})
		}
	})
	if ours, river := rates[fetchCooldown], rates[100*time.Millisecond]; ours < 2*river {
		t.Errorf("the backend's cooldown carried out %.0f/s, River's default %.0f/s: want at least twice as fast", ours, river)
	}
}
