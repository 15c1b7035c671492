package gcheadroom

import (
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	tests := []struct {
		name                  string
		headroom, live, roots uint64
		want                  int
	}{
		{"nothing measured yet: the runtime's minimum goal, 4 MiB × 200/100, is the headroom", 8 * mib, 0, 0, 200},
		{"tiny heap: bounded by the runtime's minimum goal, 4 MiB × 225/100 = 1 + 8 MiB", 8 * mib, 1 * mib, 2 * mib, 225},
		{"small heap: 2.5 + 4 MiB × 200/100", 8 * mib, 5 * mib / 2, 4 * mib, 200},
		{"1,000 rules: 6 + 6.4 MiB × 125/100", 8 * mib, 6 * mib, 32 * mib / 5, 125},
		{"live heap above the headroom: the default goal is higher", 8 * mib, 9 * mib, 10 * mib, 100},
		{"large heap", 8 * mib, 200 * mib, 201 * mib, 100},
	}
	for _, tt := range tests {
		if got := Percent(tt.headroom, tt.live, tt.roots); got != tt.want {
			t.Errorf("%s: Percent(%d, %d, %d) = %d; want %d", tt.name, tt.headroom, tt.live, tt.roots, got, tt.want)
		}
	}
}

// gcState collects and reads what the runtime now aims for.
func gcState() (percent, goal, live uint64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
}

// waitFor collects until cond holds of the runtime's state: the floor's cleanup runs on its
// own goroutine some time after a collection.
func waitFor(t *testing.T, what string, cond func(percent, goal, live uint64) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, g, l := gcState()
		if cond(p, g, l) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOGC %d, heap goal %.1f MiB, live %.1f MiB", what, p, float64(g)/mib, float64(l)/mib)
		}
		runtime.Gosched()
	}
}

var keep []byte

func TestStart(t *testing.T) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		os.Unsetenv("GOGC")
		t.Cleanup(func() { os.Setenv("GOGC", v) })
	}
	const headroom = 48 * mib
	stop := Start(headroom)
	// The goal is live + headroom within the rounding of GOGC to a whole percent.
	near := func(g, l uint64) bool { return g > l+headroom*99/100 && g <= l+headroom }
	waitFor(t, "small heap: the goal is the live heap + the headroom", func(p, g, l uint64) bool {
		return p > 100 && near(g, l)
	})

	// 16 MiB more live: still the headroom above it.
	keep = make([]byte, 16*mib)
	waitFor(t, "larger heap: the headroom above it", func(p, g, l uint64) bool {
		return p > 100 && l >= 16*mib && near(g, l)
	})
	// A live heap over the headroom: GOGC is back at 100, and the goal is the default's.
	keep = make([]byte, 64*mib)
	waitFor(t, "large heap: GOGC 100", func(p, g, l uint64) bool {
		return p == 100 && l >= 64*mib && g >= 2*l
	})
	keep = nil
	waitFor(t, "small heap again", func(p, g, l uint64) bool { return p > 100 && near(g, l) })

	stop()
	waitFor(t, "stopped", func(p, g, l uint64) bool { return p == 100 && g < headroom/2 })
}

func TestStartLeavesGOGCToTheOperator(t *testing.T) {
	t.Setenv("GOGC", "100")
	stop := Start(48 * mib)
	defer stop()
	for range 3 {
		if p, _, _ := gcState(); p != 100 {
			t.Fatalf("GOGC = %d with GOGC=100 in the environment; want the operator's 100", p)
		}
	}
}
