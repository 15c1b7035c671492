package outcomes

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/internal/testkit"
)

func wr(n uint64) string { return testkit.Sid("WR", n) }

// clock is a settable time for the window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// run starts t.Run for the test.
func run(t *testing.T, tr *Tracker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func outcomes(tr *Tracker, rule, outcome string) float64 {
	return testutil.ToFloat64(tr.metrics.outcomes.WithLabelValues(rule, outcome))
}

func unmatched(tr *Tracker, outcome string) float64 {
	return testutil.ToFloat64(tr.metrics.unmatched.WithLabelValues(outcome))
}

// TestMemory: an outcome is counted once under the rule that decided its reservation; a
// repeated event is not counted again; a reservation never decided is unmatched after its
// retry.
func TestMemory(t *testing.T) {
	tr := New(Options{Window: time.Minute, RetryAfter: time.Millisecond})
	run(t, tr)
	now := time.Now()
	tr.Record(wr(1), "voice", now)
	tr.Record(wr(2), "chat", now)
	tr.Record(wr(1), "other", now) // a repeated callback keeps the first decision
	tr.Outcome(wr(1), Timeout)
	tr.Outcome(wr(1), Timeout) // TaskRouter delivers events at least once
	tr.Outcome(wr(2), Accepted)
	tr.Outcome(wr(3), Rescinded)
	tr.Outcome("WRnot-a-sid", Rejected)
	testkit.Eventually(t, "the unknown reservations unmatched", func() bool {
		return unmatched(tr, Rescinded) == 1 && unmatched(tr, Rejected) == 1
	})
	for _, c := range []struct {
		rule, outcome string
		want          float64
	}{{"voice", Timeout, 1}, {"chat", Accepted, 1}, {"other", Timeout, 0}, {"chat", Timeout, 0}} {
		if got := outcomes(tr, c.rule, c.outcome); got != c.want {
			t.Errorf("outcomes{rule=%q,outcome=%q} = %v; want %v", c.rule, c.outcome, got, c.want)
		}
	}
	if got := tr.Len(); got != 2 {
		t.Errorf("Len() = %d; want 2", got)
	}
}

// TestMemoryEventFirst: an event that arrives before its decision is recorded (the answer
// is written before the decision is remembered) is counted by its retry.
func TestMemoryEventFirst(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	tr := New(Options{Window: time.Minute, RetryAfter: time.Second, Now: c.now})
	tr.Outcome(wr(7), Accepted) // nothing recorded yet: queued for its retry
	tr.Record(wr(7), "voice", c.now())
	c.add(2 * time.Second) // the retry is due
	run(t, tr)
	testkit.Eventually(t, "the retry counted", func() bool { return outcomes(tr, "voice", Accepted) == 1 })
	if got := unmatched(tr, Accepted); got != 0 {
		t.Errorf("unmatched = %v; want 0", got)
	}
}

// TestMemoryWindow: a decision is forgotten once it is older than the window.
func TestMemoryWindow(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	tr := New(Options{Window: 12 * time.Minute, RetryAfter: time.Nanosecond, Now: c.now})
	run(t, tr)
	tr.Record(wr(1), "voice", c.now())
	c.add(12*time.Minute - time.Second)
	tr.Outcome(wr(1), Timeout)
	if got := outcomes(tr, "voice", Timeout); got != 1 {
		t.Errorf("an outcome within the window: counted %v; want 1", got)
	}
	tr.Record(wr(2), "voice", c.now())
	c.add(12*time.Minute + 2*time.Second)
	tr.Outcome(wr(2), Timeout)
	testkit.Eventually(t, "the outcome past the window unmatched", func() bool { return unmatched(tr, Timeout) == 1 })
	// New decisions past the window of the old ones in the same shards make them go.
	tr.Record(wr(1+shards), "voice", c.now())
	tr.Record(wr(2+shards), "voice", c.now())
	if got := tr.Len(); got != 2 {
		t.Errorf("Len() after the window = %d; want 2 (the old decisions forgotten)", got)
	}
}

// TestMemoryBound: a full memory forgets its oldest decisions to take new ones, counting
// each as dropped, and never holds more than Max.
func TestMemoryBound(t *testing.T) {
	const max = shards * 4
	tr := New(Options{Window: time.Hour, Max: max})
	now := time.Now()
	// Every shard gets 6 decisions (SID n lands in shard n%16): 2 over its 4.
	for n := uint64(0); n < shards*6; n++ {
		tr.Record(wr(n), "r", now.Add(time.Duration(n)*time.Second))
	}
	if got := tr.Len(); got != max {
		t.Errorf("Len() = %d; want %d", got, max)
	}
	if got := testutil.ToFloat64(tr.metrics.droppedFull); got != shards*2 {
		t.Errorf("dropped{reason=full} = %v; want %d", got, shards*2)
	}
	// The newest are remembered, the oldest not.
	if _, found, _ := tr.mem.resolve(mustSid(t, wr(shards*6-1)), now); !found {
		t.Error("the newest decision is forgotten")
	}
	if _, found, _ := tr.mem.resolve(mustSid(t, wr(0)), now); found {
		t.Error("the oldest decision is remembered past the bound")
	}
}

func mustSid(t *testing.T, s string) sid {
	k, ok := parseSid(s)
	if !ok {
		t.Fatalf("parseSid(%q) not ok", s)
	}
	return k
}

// source is a reload.Source whose current rules a test swaps.
type source struct{ cur atomic.Pointer[reload.Rules] }

func (s *source) Current() *reload.Rules     { return s.cur.Load() }
func (s *source) Status() reload.Status      { return reload.Status{} }
func (s *source) Reload(reason string) error { return nil }

// TestSinceLoad: the outcomes counted since the serving rules were loaded start afresh
// with new rules.
func TestSinceLoad(t *testing.T) {
	src := &source{}
	first := &reload.Rules{LoadedAt: time.Now()}
	src.cur.Store(first)
	tr := New(Options{Window: time.Hour, Rules: src})
	now := time.Now()
	for n := range uint64(3) {
		tr.Record(wr(n), "voice", now)
	}
	tr.Outcome(wr(0), Timeout)
	tr.Outcome(wr(1), Accepted)
	if got, want := tr.SinceLoad(first)["voice"], (Counts{Timeout: 1, Accepted: 1}); got != want {
		t.Errorf("SinceLoad = %+v; want %+v", got, want)
	}
	second := &reload.Rules{LoadedAt: time.Now()}
	src.cur.Store(second)
	if got := tr.SinceLoad(second); len(got) != 0 {
		t.Errorf("SinceLoad after a reload = %+v; want none", got)
	}
	tr.Outcome(wr(2), Timeout)
	if got, want := tr.SinceLoad(second)["voice"], (Counts{Timeout: 1}); got != want {
		t.Errorf("SinceLoad after a reload and an outcome = %+v; want %+v", got, want)
	}
	if got := outcomes(tr, "voice", Timeout); got != 2 {
		t.Errorf("the metric after a reload = %v; want 2: it keeps counting", got)
	}
}

func TestOutcomeOf(t *testing.T) {
	for typ, want := range map[string]string{
		"reservation.accepted": Accepted, "reservation.rejected": Rejected, "reservation.timeout": Timeout,
		"reservation.canceled": Canceled, "reservation.rescinded": Rescinded,
		"reservation.completed": "", "reservation.wrapup": "", "task.canceled": "", "": "",
	} {
		if got, ok := OutcomeOf(typ); got != want || ok != (want != "") {
			t.Errorf("OutcomeOf(%q) = %q, %v; want %q", typ, got, ok, want)
		}
	}
}

func TestRegister(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	tr := New(Options{})
	if err := tr.Register(reg); err != nil {
		t.Fatal(err)
	}
	tr.Record(wr(1), "voice", time.Now())
	tr.Outcome(wr(1), Rescinded)
	want := `
# HELP reservist_reservation_outcomes_total Reservations by the rule that decided them and how they ended, from TaskRouter's Event callbacks: accepted, rejected, timeout, canceled, rescinded.
# TYPE reservist_reservation_outcomes_total counter
reservist_reservation_outcomes_total{outcome="rescinded",rule="voice"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "reservist_reservation_outcomes_total"); err != nil {
		t.Error(err)
	}
}

// TestBytesPerEntry measures what a remembered decision costs in memory, with 100,000 of
// them, and holds it to a bound: DefaultMax of them must stay a few tens of megabytes.
func TestBytesPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 entries")
	}
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := New(Options{Window: time.Hour, Max: DefaultMax})
	now := time.Now()
	for i := range uint64(n) {
		tr.Record(wr(i*2654435761), "voice", now) // spread over the shards as random SIDs are
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	runtime.KeepAlive(tr)
	t.Logf("%d decisions remembered: %.0f bytes each (heap); %d at most: %.1f MB", n, per, DefaultMax, per*DefaultMax/1e6)
	if per > 120 {
		t.Errorf("%.0f bytes per remembered decision; want at most 120", per)
	}
}

func BenchmarkRecord(b *testing.B) {
	tr := New(Options{Window: time.Hour})
	sids := make([]string, 1<<16)
	for i := range sids {
		sids[i] = wr(uint64(i) * 2654435761)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tr.Record(sids[i&(len(sids)-1)], "voice", now)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	tr := New(Options{Window: time.Hour})
	sids := make([]string, 1<<16)
	for i := range sids {
		sids[i] = wr(uint64(i) * 2654435761)
	}
	now := time.Now()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.Record(sids[next.Add(1)&(1<<16-1)], "voice", now)
		}
	})
}

// BenchmarkRecordFull is Record at the bound, where every decision forgets the oldest.
func BenchmarkRecordFull(b *testing.B) {
	tr := New(Options{Window: time.Hour, Max: 1 << 12})
	sids := make([]string, 1<<16)
	for i := range sids {
		sids[i] = wr(uint64(i) * 2654435761)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tr.Record(sids[i&(len(sids)-1)], "voice", now)
	}
}

func ExampleOutcomeOf() {
	fmt.Println(OutcomeOf("reservation.timeout"))
	fmt.Println(OutcomeOf("reservation.wrapup"))
	// Output:
	// timeout true
	//  false
}

// discard is a Store that keeps nothing.
type discard struct{}

func (discard) RecordDecisions(context.Context, []string, []string, []time.Time) error { return nil }
func (discard) ResolveOutcomes(_ context.Context, _ time.Time, sids, _ []string) ([]string, []bool, error) {
	return make([]string, len(sids)), make([]bool, len(sids)), nil
}
func (discard) PruneDecisions(context.Context, time.Time) (int64, error) { return 0, nil }

// BenchmarkRecordShared is Record with a shared store: the decision is queued for the
// writer. The queue holds every decision of the run, so that what is measured is the
// callback's side alone, not the writer's pace or the drop.
func BenchmarkRecordShared(b *testing.B) {
	tr := New(Options{Window: time.Hour, Store: discard{}, Queue: b.N + 1})
	sids := make([]string, 1<<16)
	for i := range sids {
		sids[i] = wr(uint64(i) * 2654435761)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tr.Record(sids[i&(len(sids)-1)], "voice", now)
	}
	b.StopTimer()
	if d := testutil.ToFloat64(tr.metrics.droppedQueue); d > 0 {
		b.Errorf("%v of %d decisions dropped", d, b.N)
	}
}
