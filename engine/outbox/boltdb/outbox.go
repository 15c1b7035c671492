// Package boltdb is the embedded outbox: pending actions in one bbolt file in the state
// directory, owned by one process.
//
// Put returns once the action is committed and synced to disk, so a process killed right
// after still carries the action out when it starts again. Writes from concurrent callbacks
// share one commit (see store). Run keeps the pending actions in memory, soonest first, and
// carries each out through the outbox.Carrier when it is due, at most Concurrency at a time.
package boltdb

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/reservist/reservist/engine/outbox"
)

// FileName is the store's file in the state directory.
const FileName = "outbox.db"

// Options configure an Outbox.
type Options struct {
	// Carrier makes the attempts; required.
	Carrier *outbox.Carrier
	// Concurrency is the most attempts in flight at once; default outbox.DefaultConcurrency.
	Concurrency int
	// Drain is how long Run lets calls in flight finish once its context is done; default
	// outbox.DefaultDrain.
	Drain time.Duration
}

// gcInterval is how often, at most, finished actions past their deadline are deleted.
const gcInterval = time.Minute

// Outbox is the embedded outbox.
type Outbox struct {
	store       *store
	carrier     *outbox.Carrier
	concurrency int
	log         *slog.Logger
	clock       outbox.Clock
	drain       time.Duration

	wake chan struct{} // poked when the queue changes

	mu      sync.Mutex
	pending map[string]*entry // by ReservationSid: queued or in flight
	queue   queue             // pending entries not in flight, soonest first
	closed  bool
	running bool
	stop    context.CancelFunc // stops the current Run
	stopped chan struct{}      // closed when the current Run has returned
	lastGC  time.Time
}

var _ outbox.Outbox = (*Outbox)(nil)

// entry is a pending action in memory.
type entry struct {
	a       outbox.Action
	next    time.Time // not before
	retries int
}

// Open opens (creating dir if missing) the store in dir and loads the pending actions it
// holds. Those already past their deadline are abandoned.
func Open(dir string, opts Options) (*Outbox, error) {
	if opts.Carrier == nil {
		return nil, errors.New("outbox: no carrier")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &Outbox{
		carrier:     opts.Carrier,
		concurrency: opts.Concurrency,
		log:         opts.Carrier.Logger(),
		clock:       opts.Carrier.Clock(),
		drain:       opts.Drain,
		wake:        make(chan struct{}, 1),
		pending:     make(map[string]*entry),
	}
	if o.concurrency <= 0 {
		o.concurrency = outbox.DefaultConcurrency
	}
	if o.drain <= 0 {
		o.drain = outbox.DefaultDrain
	}

	st, err := openStore(filepath.Join(dir, FileName))
	if err != nil {
		return nil, err
	}
	o.store = st

	now := o.clock.Now()
	pending, expired, unreadable, err := st.load(now)
	if err != nil {
		_ = st.close()
		return nil, err
	}
	o.lastGC = now
	for _, sid := range unreadable {
		o.log.Error("outbox record unreadable; its action cannot be sent", slog.String("reservation_sid", sid))
	}
	for _, a := range expired {
		// load has deleted them already.
		o.carrier.Abandon(a, 0, "deadline passed while reservist was down", func(outbox.Step) {})
	}
	for _, a := range pending {
		e := &entry{a: a, next: a.Due}
		o.pending[a.ReservationSid] = e
		heap.Push(&o.queue, e)
	}
	if len(pending) > 0 {
		o.log.Info("outbox resumed pending actions", slog.Int("count", len(pending)))
	}
	return o, nil
}

// Put stores an action for its reservation, committed and synced to disk before it
// returns. queued is false, and nothing changes, when an action for the same ReservationSid
// is already known: pending, or finished and not yet past its deadline.
func (o *Outbox) Put(ctx context.Context, a outbox.Action) (queued bool, err error) {
	if a.ReservationSid == "" || a.TaskSid == "" || a.WorkspaceSid == "" {
		return false, errors.New("outbox: action needs ReservationSid, TaskSid and WorkspaceSid")
	}
	if len(a.Params) == 0 {
		return false, errors.New("outbox: action needs Params")
	}
	if a.Deadline.IsZero() {
		return false, errors.New("outbox: action needs a Deadline")
	}
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return false, outbox.ErrClosed
	}
	now := o.clock.Now()
	if a.Received.IsZero() {
		a.Received = now
	}
	if a.Due.IsZero() {
		a.Due = a.Received
	}
	a.Params = a.Params.Clone() // the caller may reuse its map

	queued, err = o.store.insert(a, now)
	if err != nil || !queued {
		return false, err
	}
	o.mu.Lock()
	e := &entry{a: a, next: a.Due}
	o.pending[a.ReservationSid] = e
	heap.Push(&o.queue, e)
	o.mu.Unlock()
	o.poke()
	return true, nil
}

// Stats says how many actions are pending, in flight or waiting, and the oldest one's time.
func (o *Outbox) Stats(context.Context) (outbox.Stats, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := outbox.Stats{Depth: len(o.pending)}
	for _, e := range o.pending {
		if st.Oldest.IsZero() || e.a.Received.Before(st.Oldest) {
			st.Oldest = e.a.Received
		}
	}
	return st, nil
}

// Depth is the number of pending actions, in flight or waiting.
func (o *Outbox) Depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending)
}

// Ready is nil while the outbox is open.
func (o *Outbox) Ready() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return outbox.ErrClosed
	}
	return nil
}

// Unauthorized reports whether TaskRouter has refused a REST call with 401 or 403.
func (o *Outbox) Unauthorized() bool { return o.carrier.Unauthorized() }

// Run sends due actions until ctx is done or the outbox is closed, then waits for the calls
// in flight and returns nil. Actions not yet carried out stay in the store for the next Run,
// in this process or the next. Calls in flight when ctx ends are cancelled after the drain
// and stay pending; sending one again later is harmless, as TaskRouter refuses a second
// update of a reservation that is no longer pending.
func (o *Outbox) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return outbox.ErrClosed
	}
	if o.running {
		o.mu.Unlock()
		return errors.New("outbox: already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	o.running, o.stop, o.stopped = true, cancel, stopped
	o.mu.Unlock()
	defer func() {
		cancel()
		o.mu.Lock()
		o.running = false
		o.mu.Unlock()
		close(stopped)
	}()

	// Calls get their own context: shutting down stops new attempts at once but lets those in
	// flight finish for up to o.drain before they are cut short.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	done := make(chan struct{}, o.concurrency) // one per finished attempt
	inFlight := 0
	for {
		if ctx.Err() != nil {
			// Attempts cut short put their entries back; start no more. A real timer: the
			// drain bounds a shutdown, it does not schedule actions.
			drain := time.NewTimer(o.drain)
			defer drain.Stop()
			for inFlight > 0 {
				select {
				case <-done:
					inFlight--
				case <-drain.C:
					cancelSends()
				}
			}
			return nil
		}
		now := o.clock.Now()
		if now.Sub(o.lastGC) >= gcInterval {
			o.gc(now)
		}
		var timer <-chan time.Time
		o.mu.Lock()
		for inFlight < o.concurrency && o.queue.Len() > 0 && !o.queue[0].next.After(now) {
			e := heap.Pop(&o.queue).(*entry)
			inFlight++
			go o.attempt(sendCtx, e, done)
		}
		if inFlight < o.concurrency && o.queue.Len() > 0 {
			timer = o.clock.After(o.queue[0].next.Sub(now))
		}
		o.mu.Unlock()

		select {
		case <-ctx.Done():
		case <-done:
			inFlight--
		case <-o.wake:
		case <-timer:
		}
	}
}

// Close stops Run, waits for it to return and closes the store. Pending actions stay in the
// store.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	stop, stopped := o.stop, o.stopped
	o.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
	return o.store.close()
}

// poke wakes Run without blocking.
func (o *Outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// gc deletes finished actions whose deadline has passed: a callback for their reservation
// cannot come any more, so there is nothing to deduplicate.
func (o *Outbox) gc(now time.Time) {
	o.lastGC = now
	n, err := o.store.gc(now)
	if err != nil {
		o.log.Error("outbox garbage collection failed", slog.Any("error", err))
		return
	}
	if n > 0 {
		o.log.Debug("outbox forgot finished actions", slog.Int("count", n))
	}
}

// attempt makes one attempt at an entry and keeps its outcome.
func (o *Outbox) attempt(ctx context.Context, e *entry, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	o.carrier.Try(ctx, e.a, e.retries, func(step outbox.Step) {
		switch step.Outcome {
		case outbox.Interrupted:
			o.requeue(e, o.clock.Now()) // shutting down: leave it pending for the next Run
		case outbox.Retried:
			e.retries++
			o.requeue(e, step.Next)
		default:
			o.finish(e, stateOf[step.Outcome], o.clock.Now())
		}
	})
}

// stateOf is the stored state of an action that ended with an outcome.
var stateOf = map[outbox.Outcome]string{
	outbox.Sent:      stateDone,
	outbox.Failed:    stateFailed,
	outbox.Abandoned: stateAbandoned,
	outbox.DryRun:    stateDryRun,
}

// requeue puts an entry back in the queue to be tried at next.
func (o *Outbox) requeue(e *entry, next time.Time) {
	o.mu.Lock()
	e.next = next
	heap.Push(&o.queue, e)
	o.mu.Unlock()
}

// finish records the entry's outcome and forgets it from memory; the store keeps it until
// its deadline so that duplicates are refused.
func (o *Outbox) finish(e *entry, state string, now time.Time) {
	if err := o.store.finish(e.a.ReservationSid, state, now); err != nil {
		// The call has been made; at worst it is made again after a restart and refused as
		// not pending.
		o.log.Error("outbox could not record a finished action", append(outbox.Attrs(e.a), slog.Any("error", err))...)
	}
	o.mu.Lock()
	delete(o.pending, e.a.ReservationSid)
	o.mu.Unlock()
}

// queue is a min-heap of entries by next.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(*entry)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}
