package gcfloor

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
		name               string
		floor, live, roots uint64
		want               int
	}{
		// 16 MiB at GOGC=400 is the runtime's own minimum goal, 4 MiB × 400/100.
		{"tiny heap: the runtime's minimum goal is the floor", 16 * mib, 1 * mib, 3 * mib / 2, 400},
		{"nothing measured yet", 16 * mib, 0, 0, 400},
		{"small heap: live + roots × 240/100 = 16 MiB", 16 * mib, 4 * mib, 5 * mib, 240},
		{"half the floor: the default would reach it", 16 * mib, 8 * mib, 9 * mib, 100},
		{"live above the floor", 16 * mib, 20 * mib, 21 * mib, 100},
		{"large floor", 64 * mib, 2 * mib, 4 * mib, 1550},
	}
	for _, tt := range tests {
		if got := Percent(tt.floor, tt.live, tt.roots); got != tt.want {
			t.Errorf("%s: Percent(%d, %d, %d) = %d; want %d", tt.name, tt.floor, tt.live, tt.roots, got, tt.want)
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
	const floor = 48 * mib
	stop := Start(floor)
	waitFor(t, "small heap: the goal is the floor", func(p, g, l uint64) bool {
		return p > 100 && g > floor*9/10 && g <= floor
	})

	// A live heap over half the floor: GOGC is back at 100, and the goal is the default's.
	keep = make([]byte, 40*mib)
	waitFor(t, "large heap: GOGC 100", func(p, g, l uint64) bool {
		return p == 100 && l >= 40*mib && g >= 2*l
	})
	keep = nil
	waitFor(t, "small heap again", func(p, g, l uint64) bool { return p > 100 && g <= floor })

	stop()
	waitFor(t, "stopped", func(p, g, l uint64) bool { return p == 100 && g < floor/2 })
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
