package boltdb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/boltdb"
	"github.com/reservist/reservist/engine/taskrouter/taskroutertest"
)

// pendingForBench is how many actions wait in the outbox while Supersede is measured.
const pendingForBench = 10000

// BenchmarkSupersede measures one Supersede among pendingForBench waiting actions: of one
// reservation, of a task with three reservations (multi-reservation), and of a SID with no
// pending action. Each ended action is replaced, untimed, so the outbox stays as full.
func BenchmarkSupersede(b *testing.B) {
	ob, err := boltdb.Open(b.TempDir(), boltdb.Options{Carrier: outbox.NewCarrier(outbox.CarrierOptions{})})
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
		if queued, err := ob.Put(context.Background(), a); err != nil || !queued {
			b.Fatalf("Put = %v, %v", queued, err)
		}
		return a
	}
	var wg sync.WaitGroup
	for range 64 {
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
	for _, bc := range []struct {
		name  string
		per   int // reservations of the task
		known bool
	}{{"reservation", 1, true}, {"task-of-3", 3, true}, {"unknown", 0, false}} {
		b.Run(fmt.Sprintf("%s/pending=%d", bc.name, pendingForBench), func(b *testing.B) {
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
			if d := ob.Depth(); d != pendingForBench {
				b.Fatalf("Depth = %d; want %d", d, pendingForBench)
			}
		})
	}
}
