// Package gcheadroom keeps the garbage collector from running on a small heap far more
// often than a server needs it to.
//
// With the default GOGC=100 the collector runs each time the heap doubles, and never later
// than at 4 MiB: between two collections the program allocates as much as it keeps live.
// reservist keeps a few MiB live and every callback allocates a few KiB, so at 30,000
// callbacks/s the collector ran about 90 times a second and, on two cores, competed with
// the load itself. Headroom lets the program allocate at least a fixed number of bytes
// between collections: after each collection, GOGC is set so that the next heap goal is the
// live heap plus the headroom, or twice the live heap (GOGC=100) once that is more. The
// memory this costs over the runtime's defaults is therefore at most the headroom, whatever
// the rules or the outbox hold.
//
// GOGC in the environment turns it off: the operator's setting wins.
package gcheadroom

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

const (
	// minPercent is the least GOGC set: the runtime's default.
	minPercent = 100
	// heapMinimum is the runtime's least heap goal at GOGC=100; at GOGC=p it is
	// heapMinimum×p/100, which bounds p for a given goal.
	heapMinimum = 4 << 20
)

// Start keeps at least headroom bytes between the live heap and the heap goal from the
// next collection on, until the returned stop is called. It does nothing, and returns a
// stop that does nothing, when GOGC is set in the environment.
func Start(headroom uint64) (stop func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	t := &tuner{headroom: headroom, samples: []metrics.Sample{
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
	headroom uint64
	mu       sync.Mutex // stop waits for a tune in progress
	stopped  bool
	samples  []metrics.Sample
	percent  int
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

// tune sets GOGC for the live heap the last collection found.
func (t *tuner) tune() {
	metrics.Read(t.samples)
	live := t.samples[0].Value.Uint64()
	roots := live + t.samples[1].Value.Uint64() + t.samples[2].Value.Uint64()
	if p := Percent(t.headroom, live, roots); p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
}

// Percent is the GOGC that makes the heap goal live + headroom, and at least 100, for a
// live heap of live bytes and roots bytes to scan (the live heap, stacks and globals). The
// runtime's goal at GOGC=p is the larger of live + roots×p/100 and 4 MiB×p/100.
func Percent(headroom, live, roots uint64) int {
	p := (live + headroom) * 100 / heapMinimum
	if roots > 0 {
		p = min(p, headroom*100/roots)
	}
	return int(max(minPercent, p))
}
