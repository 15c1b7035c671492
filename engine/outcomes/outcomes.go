// Package outcomes counts what became of each reservation under the rule that decided it:
// every callback's decision is remembered for a while (ReservationSid → rule, decided at),
// and when an Event callback says a reservation was accepted, rejected, timed out, canceled
// or rescinded, reservist_reservation_outcomes_total{rule,outcome} counts it under that rule
// (docs/http.md, "Event callbacks").
//
// A Tracker remembers decisions in memory, bounded in count (Options.Max) and in age
// (Options.Window), or, when every replica shares one outbox, in the database (a Store),
// so that whichever replica an event reaches finds the rule another one decided by. The
// callback path only records: in memory that is a map insert under a shard's lock, with a
// shared store an entry on a bounded queue that a writer sends in batches. Events are
// resolved apart from the callbacks' path; one that finds no decision is tried once more a
// little later, since the decision may still be in its batch.
package outcomes

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/engine/reload"
)

// The outcomes counted: reservation_outcomes_total's outcome label.
const (
	Accepted  = "accepted"
	Rejected  = "rejected"
	Timeout   = "timeout"
	Canceled  = "canceled"
	Rescinded = "rescinded"
)

// All is every outcome, in the order Counts lists them.
var All = []string{Accepted, Rejected, Timeout, Canceled, Rescinded}

// OutcomeOf is the outcome an Event callback's EventType reports, if it reports one:
// reservation.accepted is Accepted, and so on. reservation.completed and .wrapup follow an
// acceptance and report none.
func OutcomeOf(eventType string) (string, bool) {
	switch eventType {
	case "reservation.accepted":
		return Accepted, true
	case "reservation.rejected":
		return Rejected, true
	case "reservation.timeout":
		return Timeout, true
	case "reservation.canceled":
		return Canceled, true
	case "reservation.rescinded":
		return Rescinded, true
	}
	return "", false
}

// outcomeIndex is an outcome's place in All, or -1.
func outcomeIndex(outcome string) int {
	for i, o := range All {
		if o == outcome {
			return i
		}
	}
	return -1
}

// Defaults for Options.
const (
	// DefaultMax is how many decisions a Tracker remembers in memory at most. A callback
	// rate of 200,000 per 12 minutes (the default window) is some 280 a second, above what
	// one replica is asked to decide; past it the oldest decisions are forgotten early, and
	// counted as dropped.
	DefaultMax = 200_000
	// WindowSlack is how long past the reservation timeout a decision is remembered: events
	// arrive after the reservation ends, which is at most its timeout after the decision.
	WindowSlack = 10 * time.Minute
	// DefaultRetryAfter is how long an event whose decision is not found waits before it is
	// looked up once more.
	DefaultRetryAfter = time.Second
	// DefaultQueue bounds the decisions waiting for a shared store's writer, and the events
	// waiting to be resolved.
	DefaultQueue = 8192
	// batchMax and batchLinger shape the shared writer's batches: up to batchMax decisions,
	// sent at most batchLinger after the first of them was queued.
	batchMax    = 500
	batchLinger = 50 * time.Millisecond
	// pruneEvery is how often decisions past the window are deleted from a shared store.
	pruneEvery = time.Minute
	// storeTimeout bounds one call to a shared store.
	storeTimeout = 5 * time.Second
)

// Store keeps decisions where every replica sees them: the shared outbox's database. Its
// methods take columns, one element per decision or event, so that one statement carries a
// whole batch.
type Store interface {
	// RecordDecisions stores that sids[i] was decided by rules[i] at at[i]. A reservation
	// stored already keeps its first decision.
	RecordDecisions(ctx context.Context, sids, rules []string, at []time.Time) error
	// ResolveOutcomes marks that sids[i] ended with outcomes[i] and returns, for each, the
	// rule that decided it ("" when no decision at or after since is stored) and whether
	// this call is the first to mark it (false: another event, perhaps on another replica,
	// marked it already, and it must not be counted again).
	ResolveOutcomes(ctx context.Context, since time.Time, sids, outcomes []string) (rules []string, first []bool, err error)
	// PruneDecisions deletes the decisions made before before and says how many.
	PruneDecisions(ctx context.Context, before time.Time) (int64, error)
}

// Options configure a Tracker.
type Options struct {
	// Window is how long a decision is remembered: --reservation-timeout + WindowSlack.
	Window time.Duration
	// Max bounds the decisions remembered in memory; default DefaultMax. Unused with a
	// Store, which is bounded by the window alone.
	Max int
	// Store, when set, keeps the decisions instead of memory: the shared outbox's database.
	Store Store
	// Rules, when set, lets SinceLoad count outcomes since the serving rules were loaded.
	Rules reload.Source
	// Logger says when a shared store fails and recovers; never attributes.
	Logger *slog.Logger
	// RetryAfter is how long an event whose decision was not found waits before it is
	// looked up once more; default DefaultRetryAfter.
	RetryAfter time.Duration
	// Queue bounds the shared writer's queue and the events waiting to be resolved;
	// default DefaultQueue.
	Queue int
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Tracker remembers decisions and counts outcomes. Its methods are safe for concurrent use;
// Record never blocks.
type Tracker struct {
	window     time.Duration
	retryAfter time.Duration
	now        func() time.Time
	log        *slog.Logger
	rules      reload.Source

	mem   *memory // nil with a store
	store Store

	writes  chan decision // to the shared writer
	lookups chan lookup   // events to resolve
	retries chan lookup   // events to resolve once more, after retryAfter

	names   names
	metrics *metrics
	since   atomic.Pointer[sinceLoad]

	running atomic.Bool
}

// decision is one callback's decision on its way to a shared store. The SID is held as
// bytes: as a string it would be a part of the callback's body and keep all of it.
type decision struct {
	key  sid
	rule string
	at   time.Time
}

// lookup is one event to resolve.
type lookup struct {
	key     sid
	outcome string
	due     time.Time // a retry's time; zero for a first attempt
}

// New returns a Tracker; Run resolves events and, with a store, writes and prunes.
func New(o Options) *Tracker {
	if o.Max <= 0 {
		o.Max = DefaultMax
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Window <= 0 {
		o.Window = 2*time.Minute + WindowSlack
	}
	t := &Tracker{
		window:     o.Window,
		retryAfter: o.RetryAfter,
		now:        o.Now,
		log:        o.Logger,
		rules:      o.Rules,
		store:      o.Store,
		lookups:    make(chan lookup, o.Queue),
		retries:    make(chan lookup, o.Queue),
		metrics:    newMetrics(),
	}
	if o.Store == nil {
		t.mem = newMemory(o.Max, o.Window, o.Now())
	} else {
		t.writes = make(chan decision, o.Queue)
	}
	return t
}

// Register adds the Tracker's metrics to reg.
func (t *Tracker) Register(reg prometheus.Registerer) error { return t.metrics.register(reg) }

// Record remembers that rule decided the reservation sid at at. It is on the callback's
// path: in memory it costs a map insert under one shard's lock and allocates nothing; with
// a store it queues the decision for the writer, and drops it (counted) when the queue is
// full. A sid that is not a reservation's SID is not remembered.
func (t *Tracker) Record(sid, rule string, at time.Time) {
	if t.mem != nil {
		key, ok := parseSid(sid)
		if !ok {
			return
		}
		if t.mem.insert(key, t.names.id(rule), at) {
			t.metrics.droppedFull.Inc()
		}
		return
	}
	key, ok := parseSid(sid)
	if !ok {
		return
	}
	select {
	case t.writes <- decision{key: key, rule: rule, at: at}:
	default:
		t.metrics.droppedQueue.Inc()
	}
}

// Outcome counts that the reservation sid ended with outcome (one of All), under the rule
// that decided it, once per reservation. It does not wait: the lookup happens in Run, and
// an event that finds no decision is looked up once more after the retry delay before it
// is counted as unmatched.
func (t *Tracker) Outcome(sid, outcome string) {
	if outcomeIndex(outcome) < 0 {
		return
	}
	key, ok := parseSid(sid)
	if !ok {
		t.metrics.unmatched.WithLabelValues(outcome).Inc()
		return
	}
	if t.mem != nil {
		// In memory the lookup is as cheap as queueing it; only a miss waits for Run.
		if t.resolveMemory(key, outcome) {
			return
		}
		t.retry(lookup{key: key, outcome: outcome})
		return
	}
	select {
	case t.lookups <- lookup{key: key, outcome: outcome}:
	default:
		t.metrics.unmatched.WithLabelValues(outcome).Inc()
	}
}

// resolveMemory counts an outcome found in memory; false when the decision is not there.
func (t *Tracker) resolveMemory(key sid, outcome string) bool {
	id, found, first := t.mem.resolve(key, t.now())
	if !found {
		return false
	}
	if first {
		t.count(t.names.name(id), outcome)
	}
	return true
}

// retry queues a lookup to be tried once more after the retry delay, or counts it as
// unmatched when the queue is full.
func (t *Tracker) retry(l lookup) {
	l.due = t.now().Add(t.retryAfter)
	select {
	case t.retries <- l:
	default:
		t.metrics.unmatched.WithLabelValues(l.outcome).Inc()
	}
}

// count counts one outcome under a rule.
func (t *Tracker) count(rule, outcome string) {
	t.metrics.outcomes.WithLabelValues(rule, outcome).Inc()
	if t.rules == nil {
		return
	}
	if s := t.sinceFor(t.rules.Current()); s != nil {
		s.add(rule, outcome)
	}
}

// Run resolves events until ctx ends; with a store it also writes the decisions in batches
// and prunes old ones. When ctx ends it sends the decisions still queued (bounded by the
// store's timeout) and returns.
func (t *Tracker) Run(ctx context.Context) error {
	t.running.Store(true)
	var wg sync.WaitGroup
	wg.Go(func() { t.retryLoop(ctx) })
	if t.store != nil {
		wg.Go(func() { t.resolveLoop(ctx) })
		wg.Go(func() { t.writeLoop(ctx) })
		wg.Go(func() { t.pruneLoop(ctx) })
	}
	wg.Wait()
	return nil
}

// retryLoop looks up once more the events that found no decision, each once its delay is
// over. They come in the order they were queued, which is the order they are due.
func (t *Tracker) retryLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var l lookup
		select {
		case <-ctx.Done():
			return
		case l = <-t.retries:
		}
		if wait := l.due.Sub(t.now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if t.mem != nil {
			if !t.resolveMemory(l.key, l.outcome) {
				t.metrics.unmatched.WithLabelValues(l.outcome).Inc()
			}
			continue
		}
		// Every retry due by now goes in the same statement.
		batch := []lookup{l}
	more:
		for len(batch) < batchMax {
			select {
			case l := <-t.retries:
				batch = append(batch, l)
				if l.due.After(t.now()) {
					break more // the next ones are later still: this one waits with the batch
				}
			default:
				break more
			}
		}
		if wait := batch[len(batch)-1].due.Sub(t.now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		for _, miss := range t.resolveStore(ctx, batch) {
			t.metrics.unmatched.WithLabelValues(miss.outcome).Inc()
		}
	}
}

// resolveLoop resolves events against the store in batches of what is queued.
func (t *Tracker) resolveLoop(ctx context.Context) {
	for {
		var l lookup
		select {
		case <-ctx.Done():
			return
		case l = <-t.lookups:
		}
		batch := []lookup{l}
	more:
		for len(batch) < batchMax {
			select {
			case l := <-t.lookups:
				batch = append(batch, l)
			default:
				break more
			}
		}
		for _, miss := range t.resolveStore(ctx, batch) {
			t.retry(miss)
		}
	}
}

// resolveStore resolves a batch against the store, counts what it found and returns the
// misses. A store that fails makes the whole batch misses.
func (t *Tracker) resolveStore(ctx context.Context, batch []lookup) []lookup {
	sids, outs := make([]string, len(batch)), make([]string, len(batch))
	for i, l := range batch {
		sids[i], outs[i] = l.key.String(), l.outcome // as RecordDecisions wrote it
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	rules, first, err := t.store.ResolveOutcomes(sctx, t.now().Add(-t.window), sids, outs)
	cancel()
	if err != nil {
		t.storeFailed("resolving outcomes", err)
		return batch
	}
	t.storeWorked()
	var misses []lookup
	for i, l := range batch {
		switch {
		case rules[i] == "":
			misses = append(misses, l)
		case first[i]:
			t.count(rules[i], l.outcome)
		}
	}
	return misses
}

// writeLoop sends queued decisions to the store in batches: up to batchMax, at most
// batchLinger after the first was queued. A batch the store refuses is dropped, counted:
// these are metrics, not actions, and a replay would only delay the next ones.
func (t *Tracker) writeLoop(ctx context.Context) {
	var (
		sids, rules []string
		at          []time.Time
	)
	flush := func(ctx context.Context) {
		if len(sids) == 0 {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := t.store.RecordDecisions(sctx, sids, rules, at)
		cancel()
		if err != nil {
			t.metrics.droppedStore.Add(float64(len(sids)))
			t.storeFailed("recording decisions", err)
		} else {
			t.storeWorked()
		}
		sids, rules, at = sids[:0], rules[:0], at[:0]
	}
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		select {
		case <-ctx.Done():
			// What is queued still goes, on a context of its own: shutdown is when the
			// listeners have drained, and the database is still there.
			for {
				select {
				case d := <-t.writes:
					sids, rules, at = append(sids, d.key.String()), append(rules, d.rule), append(at, d.at)
					if len(sids) == batchMax {
						flush(context.Background())
					}
					continue
				default:
				}
				break
			}
			flush(context.Background())
			return
		case d := <-t.writes:
			sids, rules, at = append(sids, d.key.String()), append(rules, d.rule), append(at, d.at)
			if len(sids) == 1 {
				linger.Reset(batchLinger)
			}
			if len(sids) >= batchMax {
				linger.Stop()
				flush(ctx)
			}
		case <-linger.C:
			flush(ctx)
		}
	}
}

// pruneLoop deletes the decisions past the window from the store. Every replica prunes;
// the deletes overlap harmlessly.
func (t *Tracker) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_, err := t.store.PruneDecisions(sctx, t.now().Add(-t.window))
		cancel()
		if err != nil {
			t.storeFailed("pruning old decisions", err)
		}
	}
}

// storeFailing is set while the store's last operation failed, so that a database that is
// down is said once, not per batch.
func (t *Tracker) storeFailed(what string, err error) {
	if !t.metrics.failing.Swap(true) {
		t.log.Warn("reservation outcomes: the database failed "+what+"; outcomes are not counted until it works again", slog.String("error", err.Error()))
	}
}

func (t *Tracker) storeWorked() {
	if t.metrics.failing.Swap(false) {
		t.log.Info("reservation outcomes: the database works again")
	}
}

// Counts are one rule's outcomes.
type Counts struct {
	Accepted  uint64 `json:"accepted"`
	Rejected  uint64 `json:"rejected"`
	Timeout   uint64 `json:"timeout"`
	Canceled  uint64 `json:"canceled"`
	Rescinded uint64 `json:"rescinded"`
}

// sinceLoad are the outcomes counted while one rule set served.
type sinceLoad struct {
	set    *reload.Rules
	mu     sync.Mutex
	counts map[string]*[5]uint64
}

func (s *sinceLoad) add(rule, outcome string) {
	i := outcomeIndex(outcome)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[rule]
	if c == nil {
		c = new([5]uint64)
		s.counts[rule] = c
	}
	c[i]++
}

// sinceFor is the counts of set, started afresh when set is not the one counted for so far.
func (t *Tracker) sinceFor(set *reload.Rules) *sinceLoad {
	if set == nil {
		return nil
	}
	for {
		cur := t.since.Load()
		if cur != nil && cur.set == set {
			return cur
		}
		next := &sinceLoad{set: set, counts: map[string]*[5]uint64{}}
		if t.since.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// SinceLoad returns, by rule name, the outcomes this process counted since set (the
// serving rules) was loaded; a rule with none is absent. The outcome of a reservation is
// counted under the name of the rule that decided it, which may have decided it under the
// previous rules.
func (t *Tracker) SinceLoad(set *reload.Rules) map[string]Counts {
	out := map[string]Counts{}
	if t == nil || set == nil {
		return out
	}
	s := t.sinceFor(set)
	s.mu.Lock()
	defer s.mu.Unlock()
	for rule, c := range s.counts {
		out[rule] = Counts{Accepted: c[0], Rejected: c[1], Timeout: c[2], Canceled: c[3], Rescinded: c[4]}
	}
	return out
}

// Len is how many decisions are remembered in memory (0 with a store).
func (t *Tracker) Len() int {
	if t.mem == nil {
		return 0
	}
	return t.mem.len()
}

// names interns rule names as small numbers, so that memory entries hold no pointers (the
// garbage collector does not scan them) and stay small. Names come from rules files, so
// there are few; each new one copies the table.
type names struct {
	mu    sync.Mutex
	table atomic.Pointer[nameTable]
}

type nameTable struct {
	ids   map[string]uint16
	names []string
}

// maxNames bounds the table: past it, decisions are remembered under "" (never in
// practice: that is 65,535 distinct rule names in one process's life).
const maxNames = 1<<16 - 1

func (n *names) id(name string) uint16 {
	if tb := n.table.Load(); tb != nil {
		if id, ok := tb.ids[name]; ok {
			return id
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.table.Load()
	if old == nil {
		old = &nameTable{ids: map[string]uint16{"": 0}, names: []string{""}}
	}
	if id, ok := old.ids[name]; ok {
		return id
	}
	if len(old.names) >= maxNames {
		return 0
	}
	name = strings.Clone(name) // kept for the process's life: not a part of something larger
	tb := &nameTable{ids: make(map[string]uint16, len(old.ids)+1), names: append(old.names[:len(old.names):len(old.names)], name)}
	for k, v := range old.ids {
		tb.ids[k] = v
	}
	id := uint16(len(tb.names) - 1)
	tb.ids[name] = id
	n.table.Store(tb)
	return id
}

func (n *names) name(id uint16) string {
	tb := n.table.Load()
	if tb == nil || int(id) >= len(tb.names) {
		return ""
	}
	return tb.names[id]
}
