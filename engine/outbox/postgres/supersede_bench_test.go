package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
	"github.com/reservist/reservist/internal/pgtest"
)

// pendingForBench is how many jobs wait in the outbox while Supersede is measured.
const pendingForBench = 10000

// BenchmarkSupersede measures one Supersede among pendingForBench waiting jobs, on
// pgtest's PostgreSQL: of one reservation, of a task with three reservations
// (multi-reservation), and of a SID with no pending job. Each ended action is replaced,
// untimed, so the outbox stays as full. Nothing runs the jobs.
//
// It runs twice: right after the inserts ("fresh"), when River's GIN index on args still
// holds them in its pending list, which PostgreSQL must read through on every search (so
// the planner scans the table instead), and after a VACUUM ("vacuumed"), which moves them
// into the index proper, as autovacuum does on a live outbox.
func BenchmarkSupersede(b *testing.B) {
	url := pgtest.Shared(b).NewDatabase(b)
	ob, err := Open(url, Options{Carrier: outbox.NewCarrier(outbox.CarrierOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ob.Close() })
	var seq uint64
	var mu sync.Mutex
	next := func() uint64 { mu.Lock(); defer mu.Unlock(); seq++; return seq }
	put := func(b *testing.B, n, task uint64) outbox.Action {
		now := time.Now()
		a := outbox.Action{ReservationSid: taskroutertest.NewSid("WR", n), TaskSid: taskroutertest.NewSid("WT", task),
			WorkspaceSid: taskroutertest.NewSid("WS", 1), Params: outbox.Params{"ReservationStatus": "accepted"},
			Received: now, Due: now.Add(time.Hour), Deadline: now.Add(2 * time.Hour)}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if queued, err := ob.Put(ctx, a); err != nil || !queued {
			b.Fatalf("Put = %v, %v", queued, err)
		}
		return a
	}
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			for {
				n := next()
				if n > pendingForBench {
					return
				}
				put(b, n, n)
			}
		})
	}
	wg.Wait()
	ctx := context.Background()
	for _, phase := range []string{"fresh", "vacuumed"} {
		sql := "ANALYZE river_job"
		if phase == "vacuumed" {
			sql = "VACUUM ANALYZE river_job"
		}
		if _, err := ob.pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
		for _, bc := range []struct {
			name string
			per  int // reservations of the task
		}{{"reservation", 1}, {"task-of-3", 3}, {"unknown", 0}} {
			b.Run(fmt.Sprintf("%s/%s/pending=%d", phase, bc.name, pendingForBench), func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					task := next()
					var a outbox.Action
					for range bc.per {
						a = put(b, next(), task)
					}
					s := outbox.Supersession{TaskSid: taskroutertest.NewSid("WT", task), Event: "task.canceled"}
					if bc.per == 1 {
						s = outbox.Supersession{ReservationSid: a.ReservationSid, Event: "reservation.rescinded"}
					}
					b.StartTimer()
					n, err := ob.Supersede(ctx, s)
					if err != nil || n != bc.per {
						b.Fatalf("Supersede = %d, %v; want %d", n, err, bc.per)
					}
				}
				st, err := ob.Stats(ctx)
				if err != nil || st.Depth != pendingForBench {
					b.Fatalf("Stats = %+v, %v; want depth %d", st, err, pendingForBench)
				}
			})
		}
	}
}
