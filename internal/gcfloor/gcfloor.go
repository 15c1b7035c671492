// Package gcfloor keeps the garbage collector from running on a small heap far more often
// than a server needs it to.
//
// With the default GOGC=100 the collector runs each time the heap doubles, and never later
// than at 4 MiB. reservist's live heap is a few MiB, and every callback allocates a few
// KiB, so at full load the collector ran about 70 times a second and took an eighth of the
// CPU. A floor lets the heap grow to a fixed size before a collection (the way a higher
// GOGC would), but only while the live heap is small: once twice the live heap is above
// the floor, GOGC is back at 100 and the heap grows as it always would. The memory this
// costs is therefore bounded by the floor, whatever the rules or the outbox hold.
//
// After each collection, GOGC is set so that the next heap goal is the floor. GOGC in the
// environment turns the floor off: the operator's setting wins.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

const (
	// minPercent is the least GOGC the floor sets: the runtime's default.
	minPercent = 100
	// heapMinimum is the runtime's least heap goal at GOGC=100; at GOGC=p it is
	// heapMinimum×p/100, which bounds p for a goal of floor.
	heapMinimum = 4 << 20
)

// Start keeps the heap goal at least floor bytes from the next collection on, until the
// returned stop is called. It does nothing, and returns a stop that does nothing, when GOGC
// is set in the environment.
func Start(floor uint64) (stop func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	t := &tuner{floor: floor, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.arm()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.stopped = true
		debug.SetGCPercent(minPercent)
	}
}

type tuner struct {
	floor   uint64
	mu      sync.Mutex // stop waits for a tune in progress
	stopped bool
	samples []metrics.Sample
	percent int
}

// sentinel is garbage from birth: its cleanup runs after the next collection. It holds a
// pointer so that it is not put in a tiny-object block, whose cleanups may never run.
type sentinel struct{ _ *int }

// arm runs tune after the next collection.
func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.stopped {
			return
		}
		t.tune()
		t.arm()
	}, t)
}

// tune sets GOGC so that the heap goal, live + (live + stacks + globals) × GOGC/100 as the
// runtime computes it, is the floor.
func (t *tuner) tune() {
	metrics.Read(t.samples)
	live := t.samples[0].Value.Uint64()
	roots := live + t.samples[1].Value.Uint64() + t.samples[2].Value.Uint64()
	p := Percent(t.floor, live, roots)
	if p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
}

// Percent is the GOGC that makes the heap goal at most floor for a live heap of live bytes
// and roots bytes to scan (live heap, stacks and globals), and at least 100. The goal is the
// larger of live + roots×GOGC/100 and the runtime's minimum, 4 MiB×GOGC/100.
func Percent(floor, live, roots uint64) int {
	if live >= floor {
		return minPercent
	}
	p := floor * 100 / heapMinimum
	if roots > 0 {
		p = min(p, (floor-live)*100/roots)
	}
	return int(max(minPercent, p))
}
