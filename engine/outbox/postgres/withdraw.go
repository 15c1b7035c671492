package postgres

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/reservist/reservist/engine/outbox"
)

// A Put that fails may have inserted its job all the same: the commit can land after the
// caller's deadline cut the connection, or the reply to it can be lost. Its callback has been
// answered another way (synchronously, or 503), so such a job must not be carried out: it is
// withdrawn, cancelled as River cancels a job, which keeps the reservation known (a repeat of
// the callback queues nothing), as the embedded backend keeps a withdrawn record.
//
// Every insert carries a token of its own in the job's metadata; after a failed Put the
// withdrawer looks for the token (River's job list, by metadata, which River indexes) a few
// times over half a minute, since a commit in flight may become visible a little later, and
// cancels the job it finds. Between the late commit and the withdrawal another replica may
// fetch the job and send it: the at-least-once case of docs/outbox.md.

// putKey is the metadata key of a Put's token.
const putKey = "reservist_put"

func putMetadata(token string) []byte {
	b, _ := json.Marshal(map[string]string{putKey: token})
	return b
}

// withdrawAfter are the times after a failed Put at which its job is looked for.
var withdrawAfter = []time.Duration{0, time.Second, 5 * time.Second, 30 * time.Second}

// withdrawal is one failed Put's job, maybe inserted.
type withdrawal struct {
	a     outbox.Action
	token string
	since time.Time
	tries int // looks done
}

// withdrawer works through failed Puts in one goroutine.
type withdrawer struct {
	o    *Outbox
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	pending []*withdrawal
}

func newWithdrawer(o *Outbox) *withdrawer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &withdrawer{o: o, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

// add has the job of a failed Put looked for.
func (w *withdrawer) add(a outbox.Action, token string) {
	w.mu.Lock()
	w.pending = append(w.pending, &withdrawal{a: a, token: token, since: time.Now()})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// close stops the withdrawer; what it has not looked for yet is left as it is.
func (w *withdrawer) close() {
	w.stop()
	<-w.done
}

func (w *withdrawer) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.wake:
		}
		w.mu.Lock()
		due := make([]*withdrawal, 0, len(w.pending))
		now := time.Now()
		for _, p := range w.pending {
			if now.Sub(p.since) >= withdrawAfter[p.tries] {
				due = append(due, p)
			}
		}
		w.mu.Unlock()
		for _, p := range due {
			if ctx.Err() != nil {
				return
			}
			w.look(ctx, p)
		}
	}
}

// look looks for p's job once and cancels it if it is there. A look that fails (the
// database unreachable) is made again a second later, until the action's deadline.
func (w *withdrawer) look(ctx context.Context, p *withdrawal) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	found, err := w.o.client.JobList(ctx, river.NewJobListParams().Kinds(kind).
		Metadata(string(putMetadata(p.token))).First(1))
	switch {
	case err != nil:
		if time.Now().After(p.a.Deadline) {
			w.forget(p) // abandoned by now, were it there
		}
		return
	case len(found.Jobs) == 1:
		if _, err := w.o.client.JobCancel(ctx, found.Jobs[0].ID); err != nil {
			return // looked for again next time
		}
		w.o.log.Info("outbox withdrew an action stored after its callback was answered without it",
			outbox.Attrs(p.a)...)
		w.forget(p)
		return
	}
	p.tries++
	if p.tries == len(withdrawAfter) {
		w.forget(p)
	}
}

func (w *withdrawer) forget(p *withdrawal) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, q := range w.pending {
		if q == p {
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
			return
		}
	}
}
