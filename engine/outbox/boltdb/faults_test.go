package boltdb_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/boltdb"
)

// storeWith writes a store holding n pending actions in h.dir and closes it; it returns the
// file's path and content.
func storeWith(t *testing.T, h *harness, n int) (string, []byte) {
	t.Helper()
	h.open(options{})
	for i := range n {
		a := h.action(uint64(i + 1))
		a.Params = outbox.Params{"Instruction": "call", "CallFrom": "+15005550006", "CallTo": "+15551230000",
			"CallUrl": "https://example.com/twiml/agent-answer", "CallAccept": true}
		h.put(a)
	}
	if err := h.ob.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.dir, boltdb.FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

// openDamaged opens a store over a damaged file: it must refuse it with a DamagedError or
// open it, and never panic or fault (a fault would end this test binary).
func openDamaged(t *testing.T, h *harness, path string, data []byte) error {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	carrier := outbox.NewCarrier(outbox.CarrierOptions{Clock: h.clock})
	ob, err := boltdb.Open(h.dir, boltdb.Options{Carrier: carrier})
	if err == nil {
		_ = ob.Close()
	}
	return err
}

// A damaged store file is refused at Open, with a message naming it and what to do; bbolt
// never gets to map it (truncated: SIGBUS; zeroed or random pages: panics).
func TestDamagedFileRefused(t *testing.T) {
	h := newHarness(t)
	path, good := storeWith(t, h, 300)
	const page = 4096
	pages := len(good) / page
	zero := func(from int) []byte {
		b := append([]byte(nil), good...)
		clear(b[from*page:])
		return b
	}
	random := func(from int, seed uint64) []byte {
		b := append([]byte(nil), good...)
		r := rand.New(rand.NewPCG(seed, 1))
		for i := from * page; i < len(b); i++ {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for name, data := range map[string][]byte{
		"truncated to 8 KiB":  good[:8192],
		"truncated to 16 KiB": good[:16384],
		"truncated to half":   good[:len(good)/2],
		"data pages zeroed":   zero(2),
		"data pages random":   random(2, 1),
		"all of it random":    random(0, 2),
		"a page and a bit":    good[:page+100],
	} {
		err := openDamaged(t, h, path, data)
		var de *boltdb.DamagedError
		if !errors.As(err, &de) {
			t.Errorf("%s: Open = %v; want a DamagedError", name, err)
			continue
		}
		if de.Path != path || !strings.Contains(err.Error(), "Move it aside (mv "+path+" "+path+".damaged)") {
			t.Errorf("%s: message %q; want it to name %s and say to move it aside", name, err, path)
		}
	}
	// Every page of the file, in turn, zeroed or overwritten: refused or opened, never a
	// crash.
	refused := 0
	for p := range pages {
		for _, seed := range []uint64{0, 7} {
			b := append([]byte(nil), good...)
			if seed == 0 {
				clear(b[p*page : (p+1)*page])
			} else {
				r := rand.New(rand.NewPCG(seed, uint64(p)))
				for i := p * page; i < (p+1)*page; i++ {
					b[i] = byte(r.Uint32())
				}
			}
			if err := openDamaged(t, h, path, b); err != nil {
				var de *boltdb.DamagedError
				if !errors.As(err, &de) {
					t.Errorf("page %d seed %d: Open = %v; want a DamagedError or success", p, seed, err)
				}
				refused++
			}
		}
	}
	// A few bytes flipped anywhere.
	r := rand.New(rand.NewPCG(3, 3))
	for range 100 {
		b := append([]byte(nil), good...)
		for range 1 + r.IntN(8) {
			b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
		}
		if err := openDamaged(t, h, path, b); err != nil {
			var de *boltdb.DamagedError
			if !errors.As(err, &de) {
				t.Errorf("flipped bytes: Open = %v; want a DamagedError or success", err)
			}
		}
	}
	t.Logf("%d pages; %d of %d single-page damages refused", pages, refused, 2*pages)
	// And the good file still opens with every action.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if ob := h.open(options{}); ob.Depth() != 300 {
		t.Errorf("Depth of the undamaged file = %d; want 300", ob.Depth())
	}
}

// Put is bounded by its context: a store that cannot commit in time fails the Put, counts
// a store error and turns readiness off; the write that lands after its caller gave up is
// withdrawn, never carried out, even after a restart.
func TestPutBoundedByContext(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	sent := map[string]int{}
	sender := senderFunc(func(_ context.Context, a outbox.Action) error {
		mu.Lock()
		defer mu.Unlock()
		sent[a.ReservationSid]++
		return nil
	})
	ob := h.open(options{CheckEvery: 5 * time.Millisecond, StuckAfter: 50 * time.Millisecond, Sender: sender})
	h.run()
	frozen := make(chan struct{})
	var once sync.Once
	boltdb.HoldCommits(ob, func() { <-frozen })
	thaw := func() { once.Do(func() { close(frozen) }) }
	defer thaw()

	// Action 1's commit starts and freezes.
	a := h.action(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	start := time.Now()
	queued, err := ob.Put(ctx, a)
	cancel()
	if took := time.Since(start); queued || !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
		t.Fatalf("Put on a frozen store = %v, %v after %v; want DeadlineExceeded at the deadline", queued, err, took)
	}
	if got := h.metric("reservist_outbox_store_errors_total", outbox.StoreOpPut); got != 1 {
		t.Errorf("store errors{put} = %v; want 1", got)
	}
	waitFor(t, "readiness to fail while the commit is stuck", func() bool { return ob.Ready() != nil })
	if got := h.metric("reservist_outbox_store_up", ""); got != 0 {
		t.Errorf("reservist_outbox_store_up = %v while failing; want 0", got)
	}
	// Action 2 gives up at its deadline too, queued behind the frozen commit; it never
	// reached the store.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, err := ob.Put(ctx, h.action(2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Put = %v; want DeadlineExceeded", err)
	}
	cancel()

	thaw()
	boltdb.HoldCommits(ob, nil)
	waitFor(t, "readiness back", func() bool { return ob.Ready() == nil })
	// Action 1's write landed after its caller answered the callback another way: it is
	// withdrawn, and the reservation stays known, so a repeat of the callback queues
	// nothing. Action 2 never landed: a repeat queues it.
	if h.put(h.action(1)) {
		t.Error("reservation 1 queued again after its late write")
	}
	if !h.put(h.action(2)) {
		t.Error("reservation 2, never stored, was not queued")
	}
	waitFor(t, "action 2 to be sent", func() bool { return ob.Depth() == 0 })
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob = h.open(options{Sender: sender})
	if ob.Depth() != 0 {
		t.Errorf("Depth after a restart = %d; want 0: the late write was withdrawn", ob.Depth())
	}
	h.run()
	h.put(h.action(3))
	waitFor(t, "action 3 to be sent", func() bool { return ob.Depth() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if sent[h.action(1).ReservationSid] != 0 || sent[h.action(2).ReservationSid] != 1 || sent[h.action(3).ReservationSid] != 1 {
		t.Errorf("sent = %v; want actions 2 and 3 once each and never the withdrawn 1", sent)
	}
}

// A store that fails (disk full) fails readiness and counts; outcomes it could not record
// are recorded once it works again, so that a restart does not send them twice.
func TestStoreFailureRecorded(t *testing.T) {
	h := newHarness(t)
	var sent atomic.Int32
	sender := senderFunc(func(context.Context, outbox.Action) error { sent.Add(1); return nil })
	ob := h.open(options{CheckEvery: 5 * time.Millisecond, Sender: sender})
	for n := range 20 {
		h.put(h.action(uint64(n + 1)))
	}
	var full atomic.Bool
	full.Store(true)
	boltdb.FailCommits(ob, func() error {
		if full.Load() {
			return errors.New("write outbox.db: no space left on device")
		}
		return nil
	})
	h.run()
	waitFor(t, "the actions to be sent", func() bool { return sent.Load() == 20 && ob.Depth() == 0 })
	if ob.Ready() == nil {
		t.Error("Ready = nil while no outcome can be recorded")
	}
	if got := h.metric("reservist_outbox_store_errors_total", outbox.StoreOpFinish); got < 1 {
		t.Errorf("store errors{finish} = %v; want at least 1", got)
	}
	if _, err := ob.Put(context.Background(), h.action(99)); err == nil {
		t.Error("Put succeeded on a full disk")
	}
	full.Store(false)
	waitFor(t, "readiness back once the disk has room", func() bool { return ob.Ready() == nil })
	if len(h.logs.Records("outbox store works again")) == 0 {
		t.Errorf("no recovery line:\n%s", h.logs)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob = h.open(options{Sender: sender})
	if ob.Depth() != 0 {
		t.Errorf("Depth after a restart = %d; want 0: every outcome recorded, none sent twice", ob.Depth())
	}
}

// The state directory removed while running: the store writes its file out anew from the
// open copy, so that nothing pending is lost; while it cannot, Put fails and readiness is
// off.
func TestStateDirRemoved(t *testing.T) {
	h := newHarness(t)
	h.dir = filepath.Join(t.TempDir(), "state")
	ob := h.open(options{CheckEvery: 5 * time.Millisecond})
	h.put(h.action(1))
	if err := os.RemoveAll(h.dir); err != nil {
		t.Fatal(err)
	}
	if !h.put(h.action(2)) {
		t.Fatal("Put after the state dir was removed did not queue")
	}
	if _, err := os.Stat(filepath.Join(h.dir, boltdb.FileName)); err != nil {
		t.Fatalf("the store file was not written out anew: %v", err)
	}
	if len(h.logs.Records("outbox store file removed or replaced while running; writing it out anew")) != 1 {
		t.Errorf("removal not logged:\n%s", h.logs)
	}

	// Now a file stands where the directory was: nothing can be written there.
	if err := os.RemoveAll(h.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.dir, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Put(context.Background(), h.action(3)); err == nil {
		t.Fatal("Put into a removed store succeeded")
	}
	waitFor(t, "readiness off", func() bool { return ob.Ready() != nil })
	if err := os.Remove(h.dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readiness back once the directory can be made again", func() bool { return ob.Ready() == nil })
	h.put(h.action(4))
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if ob := h.open(options{}); ob.Depth() != 3 {
		t.Errorf("Depth after a restart = %d; want 3 (actions 1, 2 and 4)", ob.Depth())
	}
}

// Against a TaskRouter that fails every call, the shared gate holds the scheduler back: a
// trickle of probes, not every pending action retrying on its own.
func TestFailingTaskRouterIsProbed(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int32
	ob := h.open(options{Concurrency: 8, Sender: senderFunc(func(context.Context, outbox.Action) error {
		calls.Add(1)
		return &outbox.HTTPError{StatusCode: 500, Message: "Internal Server Error"}
	})})
	for n := range 200 {
		h.put(h.action(uint64(n + 1)))
	}
	h.run()
	// The count comes after the outcome is kept: wait for both.
	waitFor(t, "every action to be abandoned at its deadline", func() bool { return ob.Depth() == 0 && h.calls("abandoned") == 200 })
	// 120 s of deadline: a few failures open the breaker, then probes at cooldowns of 1, 2,
	// 4, … up to 30 s; never one call per action per backoff.
	if n := calls.Load(); n > 40 {
		t.Errorf("%d calls for 200 actions against a failing TaskRouter over 120 s; want a trickle (≤ 40)", n)
	} else {
		t.Logf("%d calls for 200 actions over 120 s of virtual time", n)
	}
	if got := h.calls("abandoned"); got != 200 {
		t.Errorf("abandoned = %d; want 200", got)
	}
}
