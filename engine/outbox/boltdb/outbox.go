// Package boltdb is the embedded outbox: pending actions in one bbolt file in the state
// directory, owned by one process.
//
// Put returns once the action is committed and synced to disk, so a process killed right
// after still carries the action out when it starts again. Writes from concurrent callbacks
// share one commit (see store). Run keeps the pending actions in memory, soonest first, and
// carries each out through the outbox.Carrier when it is due, at most Concurrency at a time.
//
// Open refuses a damaged file (see DamagedError) before bbolt maps it. While the store
// fails (disk full, I/O errors, the file removed) Ready says so, and outcomes that could not
// be recorded are recorded again until they are, so that a restart does not send them twice.
package boltdb

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	// CheckEvery is how often the store is looked at while it runs: that the path still
	// names its file, that no commit is stuck, that a failed store works again, and to
	// record outcomes that could not be recorded; default DefaultCheckEvery.
	CheckEvery time.Duration
	// StuckAfter is how long a commit may take before the store counts as failing; default
	// DefaultStuckAfter.
	StuckAfter time.Duration
}

// Defaults for Options.
const (
	DefaultCheckEvery = time.Second
	DefaultStuckAfter = 2 * time.Second
)

// gcInterval is how often, at most, finished actions past their deadline are deleted.
const gcInterval = time.Minute

// Outbox is the embedded outbox.
type Outbox struct {
	store       *store
	carrier     *outbox.Carrier
	health      *outbox.StoreHealth
	concurrency int
	log         *slog.Logger
	clock       outbox.Clock
	drain       time.Duration
	checkEvery  time.Duration
	stuckAfter  time.Duration

	wake      chan struct{} // poked when the queue changes
	stopCheck chan struct{} // closed by Close: the checks stop
	checked   chan struct{} // closed when the checks have stopped

	mu      sync.Mutex
	pending map[string]*entry // by ReservationSid: queued or in flight
	// byTask are the pending entries by TaskSid, then ReservationSid, so that Supersede by
	// task costs the task's own actions rather than a walk of every pending one. It is kept
	// in memory only, rebuilt from the store at Open as pending is.
	byTask     map[string]map[string]*entry
	queue      queue     // pending entries not in flight, soonest first
	unrecorded []outcome // outcomes the store failed to record, to record again
	lastGC     time.Time

	life outbox.Lifecycle
}

var _ outbox.Outbox = (*Outbox)(nil)

// entry is a pending action in memory. It is in the queue (index ≥ 0) while it waits and
// out of it (index -1) while an attempt is in flight; only Run takes it out and only
// Supersede removes it otherwise, both under Outbox.mu, which is what makes an action
// either sent or superseded, never both.
type entry struct {
	a       outbox.Action
	next    time.Time // not before
	retries int
	index   int // in the queue; -1 while in flight
	// supersededBy is the event type of a Supersede that came while the entry was in
	// flight: if its attempt does not end it, it ends as superseded rather than waiting
	// again. Guarded by Outbox.mu.
	supersededBy string
}

// Open opens (creating dir if missing) the store in dir and loads the pending actions it
// holds. Those already past their deadline are abandoned. A damaged file is refused with a
// *DamagedError, never opened.
func Open(dir string, opts Options) (*Outbox, error) {
	if opts.Carrier == nil {
		return nil, errors.New("outbox: no carrier")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &Outbox{
		carrier:     opts.Carrier,
		health:      outbox.NewStoreHealth(opts.Carrier.Metrics(), opts.Carrier.Logger()),
		concurrency: opts.Concurrency,
		log:         opts.Carrier.Logger(),
		clock:       opts.Carrier.Clock(),
		drain:       opts.Drain,
		checkEvery:  opts.CheckEvery,
		stuckAfter:  opts.StuckAfter,
		wake:        make(chan struct{}, 1),
		stopCheck:   make(chan struct{}),
		checked:     make(chan struct{}),
		pending:     make(map[string]*entry),
		byTask:      make(map[string]map[string]*entry),
	}
	if o.concurrency <= 0 {
		o.concurrency = outbox.DefaultConcurrency
	}
	if o.drain <= 0 {
		o.drain = outbox.DefaultDrain
	}
	if o.checkEvery <= 0 {
		o.checkEvery = DefaultCheckEvery
	}
	if o.stuckAfter <= 0 {
		o.stuckAfter = DefaultStuckAfter
	}

	path := filepath.Join(dir, FileName)
	if err := checkFile(path); err != nil {
		return nil, err
	}
	st, err := openStore(path, o.health, o.log)
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
		o.add(&entry{a: a, next: a.Due})
	}
	if len(pending) > 0 {
		o.log.Info("outbox resumed pending actions", slog.Int("count", len(pending)))
	}
	go o.checks()
	return o, nil
}

// Put stores an action for its reservation, committed and synced to disk before it
// returns. queued is false, and nothing changes, when an action for the same ReservationSid
// is already known: pending, or finished and not yet past its deadline. When ctx ends
// before the commit, Put fails; if the commit lands after all, the action is withdrawn.
func (o *Outbox) Put(ctx context.Context, a outbox.Action) (queued bool, err error) {
	if err := a.Validate(); err != nil {
		return false, err
	}
	if o.life.Closed() {
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
	a.Private = slices.Clone(a.Private)

	queued, err = o.store.insert(ctx, a, now)
	if err != nil || !queued {
		return false, err
	}
	o.mu.Lock()
	o.add(&entry{a: a, next: a.Due})
	o.mu.Unlock()
	o.poke()
	return true, nil
}

// add makes e pending and queues it; o.mu is held (or o not shared yet).
func (o *Outbox) add(e *entry) {
	o.pending[e.a.ReservationSid] = e
	task := o.byTask[e.a.TaskSid]
	if task == nil {
		task = make(map[string]*entry)
		o.byTask[e.a.TaskSid] = task
	}
	task[e.a.ReservationSid] = e
	heap.Push(&o.queue, e)
}

// forget drops e from the pending entries; o.mu is held.
func (o *Outbox) forget(e *entry) {
	delete(o.pending, e.a.ReservationSid)
	if task := o.byTask[e.a.TaskSid]; task != nil {
		delete(task, e.a.ReservationSid)
		if len(task) == 0 {
			delete(o.byTask, e.a.TaskSid)
		}
	}
}

// Supersede ends the pending actions of a reservation or a task, as an Event callback
// said it is over; see outbox.Outbox. Waiting entries leave the queue under o.mu, where
// Run takes entries for attempts, so none of them is attempted after; entries in flight
// are marked, and end as superseded if their attempt does not end them. The outcomes are
// recorded in one commit; should the store fail it, they are recorded again by the checks,
// as every outcome is (the store's health says it fails meanwhile).
//
// Cost: a map lookup, then the task's own pending actions (an index in memory, not a walk
// of every pending one), and one commit for all of them.
func (o *Outbox) Supersede(ctx context.Context, s outbox.Supersession) (int, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	if o.life.Closed() {
		return 0, outbox.ErrClosed
	}
	o.mu.Lock()
	var named []*entry
	if s.ReservationSid != "" {
		if e := o.pending[s.ReservationSid]; e != nil {
			named = append(named, e)
		}
	} else {
		for _, e := range o.byTask[s.TaskSid] {
			named = append(named, e)
		}
	}
	var ended []*entry
	for _, e := range named {
		if e.index < 0 {
			e.supersededBy = s.Event // in flight: its own answer decides
			continue
		}
		heap.Remove(&o.queue, e.index)
		ended = append(ended, e)
	}
	o.mu.Unlock()
	if len(ended) == 0 {
		return 0, nil
	}
	now := o.clock.Now()
	outs := make([]outcome, len(ended))
	for i, e := range ended {
		outs[i] = outcome{sid: e.a.ReservationSid, state: stateSuperseded, at: now}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.drain) // a frozen disk must not hold the caller
	err := o.store.finish(wctx, outs)
	cancel()
	o.mu.Lock()
	for _, e := range ended {
		o.forget(e)
	}
	if err != nil {
		o.unrecorded = append(o.unrecorded, outs...)
	}
	o.mu.Unlock()
	for _, e := range ended {
		o.carrier.Supersede(e.a, s.Event, func(outbox.Step) {})
	}
	return len(ended), nil
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

// Ready is nil while the outbox is open and its store works.
func (o *Outbox) Ready() error {
	if o.life.Closed() {
		return outbox.ErrClosed
	}
	return o.health.Err()
}

// Unauthorized reports whether TaskRouter has refused a REST call with 401 or 403.
func (o *Outbox) Unauthorized() bool { return o.carrier.Unauthorized() }

// Run sends due actions until ctx is done or the outbox is closed, then waits for the calls
// in flight and returns nil. Actions not yet carried out stay in the store for the next Run,
// in this process or the next. Calls in flight when ctx ends are cancelled after the drain
// and stay pending; sending one again later is harmless, as TaskRouter refuses a second
// update of a reservation that is no longer pending.
func (o *Outbox) Run(ctx context.Context) error {
	ctx, end, err := o.life.Begin(ctx)
	if err != nil {
		return err
	}
	defer end()

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
		// While every call is held back (a 429's pause, an open breaker), nothing is
		// picked: the scheduler sleeps until the hold ends or an attempt in flight ends.
		held := o.carrier.HeldUntil(now)
		o.mu.Lock()
		for held.IsZero() && inFlight < o.concurrency && o.queue.Len() > 0 && !o.queue[0].next.After(now) {
			e := heap.Pop(&o.queue).(*entry)
			inFlight++
			go o.attempt(sendCtx, e, done)
			held = o.carrier.HeldUntil(now) // a half-open breaker lets one probe through
		}
		if inFlight < o.concurrency && o.queue.Len() > 0 {
			next := o.queue[0].next
			if held.After(next) {
				next = held
			}
			timer = o.clock.After(next.Sub(now))
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
// store; outcomes not recorded yet get a last try.
func (o *Outbox) Close() error {
	if !o.life.Close() {
		return nil
	}
	close(o.stopCheck)
	<-o.checked
	ctx, cancel := context.WithTimeout(context.Background(), o.checkEvery)
	defer cancel()
	if n := o.recordAgain(ctx); n > 0 {
		o.log.Error("outbox could not record how some actions ended; after a restart they are sent again (and refused as not pending)",
			slog.Int("count", n))
	}
	return o.store.close()
}

// checks looks at the store every checkEvery until Close: whether the path still names its
// file, whether a commit is stuck, whether a failing store works again; and it records the
// outcomes that could not be recorded.
func (o *Outbox) checks() {
	defer close(o.checked)
	t := time.NewTicker(o.checkEvery)
	defer t.Stop()
	stuck := false
	for {
		select {
		case <-o.stopCheck:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.checkEvery)
		switch d := o.store.stuckFor(time.Now()); {
		case d > o.stuckAfter && !stuck:
			stuck = true
			o.health.Failed(outbox.StoreOpCheck, fmt.Errorf("a commit has not finished for %.1fs", d.Seconds()))
		case d <= o.stuckAfter:
			stuck = false
		}
		o.mu.Lock()
		retry := len(o.unrecorded) > 0
		o.mu.Unlock()
		switch {
		case stuck:
			// A write now would only queue behind the stuck one.
		case retry:
			o.recordAgain(ctx)
		case o.health.Err() != nil || !o.store.sameFile():
			// Nothing else will write while /readyz keeps callbacks away: the probe
			// finds out when the store works again (or writes a removed file out anew).
			_ = o.store.probe(ctx)
		}
		cancel()
	}
}

// recordAgain tries to record the outcomes the store failed to record, and returns how
// many are still not recorded.
func (o *Outbox) recordAgain(ctx context.Context) int {
	o.mu.Lock()
	batch := slices.Clone(o.unrecorded)
	o.mu.Unlock()
	if len(batch) == 0 {
		return 0
	}
	if err := o.store.finish(ctx, batch); err != nil {
		return len(batch)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unrecorded = o.unrecorded[len(batch):]
	return len(o.unrecorded)
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
	ctx, cancel := context.WithTimeout(context.Background(), o.checkEvery)
	defer cancel()
	n, err := o.store.gc(ctx, now)
	if err != nil {
		o.log.Error("outbox garbage collection failed", slog.Any("error", err))
		return
	}
	if n > 0 {
		o.log.Debug("outbox forgot finished actions", slog.Int("count", n))
	}
}

// attempt makes one attempt at an entry and keeps its outcome. An entry superseded while
// in flight ends as superseded when its attempt would have had it wait again.
func (o *Outbox) attempt(ctx context.Context, e *entry, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	var superseded string
	o.carrier.Try(ctx, e.a, e.retries, func(step outbox.Step) {
		switch step.Outcome {
		case outbox.Interrupted:
			superseded = o.requeue(e, o.clock.Now()) // shutting down: leave it pending for the next Run
		case outbox.Held:
			superseded = o.requeue(e, step.Next) // not attempted: same attempt number
		case outbox.Retried:
			e.retries++
			superseded = o.requeue(e, step.Next)
		default:
			o.finish(e, stateOf[step.Outcome], o.clock.Now())
		}
	})
	if superseded != "" {
		o.finish(e, stateSuperseded, o.clock.Now())
		o.carrier.Supersede(e.a, superseded, func(outbox.Step) {})
	}
}

// stateOf is the stored state of an action that ended with an outcome.
var stateOf = map[outbox.Outcome]string{
	outbox.Sent:       stateDone,
	outbox.Failed:     stateFailed,
	outbox.Abandoned:  stateAbandoned,
	outbox.DryRun:     stateDryRun,
	outbox.Superseded: stateSuperseded,
}

// requeue puts an entry back in the queue to be tried at next, unless a Supersede came
// while it was in flight: then it returns that Supersede's event and leaves the entry out,
// for the caller to finish.
func (o *Outbox) requeue(e *entry, next time.Time) (supersededBy string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e.supersededBy != "" {
		return e.supersededBy
	}
	e.next = next
	heap.Push(&o.queue, e)
	return ""
}

// finish records the entry's outcome and forgets it from memory; the store keeps it until
// its deadline so that duplicates are refused. An outcome the store cannot record now is
// recorded again by the checks until it is: left pending in the file, the action would be
// sent again after a restart.
func (o *Outbox) finish(e *entry, state string, now time.Time) {
	out := outcome{sid: e.a.ReservationSid, state: state, at: now}
	ctx, cancel := context.WithTimeout(context.Background(), o.drain) // a frozen disk must not hold Run
	err := o.store.finish(ctx, []outcome{out})
	cancel()
	o.mu.Lock()
	o.forget(e)
	if err != nil {
		o.unrecorded = append(o.unrecorded, out)
	}
	o.mu.Unlock()
}

// queue is a min-heap of entries by next; each entry knows its index, so that Supersede
// can take it out of the middle.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
