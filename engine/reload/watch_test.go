package reload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A generous deadline: the suite runs on loaded 2-core CI machines, and only a broken
// watcher should ever get near it.
const deadline = 20 * time.Second

// check is one look at the file the watcher took.
type check struct {
	reason string
	tried  bool
}

// watchRun is a Watch running in the background, with the checks it makes.
type watchRun struct {
	checks chan check
	stop   func()
}

// startWatch runs Watch until the test ends, and returns once it watches and has made its
// first check, so a change the test makes afterwards can only be seen by an event or a poll.
func startWatch(t *testing.T, r *Reloader, opts WatchOptions) *watchRun {
	t.Helper()
	w := &watchRun{checks: make(chan check, 4096)}
	r.testHookChecked = func(reason string, tried bool) {
		select {
		case w.checks <- check{reason, tried}:
		default: // nobody counts this many; never block the watcher
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx, opts) }()
	var stop func()
	var once sync.Once
	w.stop = func() { once.Do(stop) }
	stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch = %v; want nil after cancel", err)
			}
		case <-time.After(deadline):
			t.Error("Watch did not return after its context was cancelled")
		}
	}
	t.Cleanup(w.stop)
	w.next(t, "watch")
	return w
}

// next waits for the watcher's next check and fails unless its reason is want.
func (w *watchRun) next(t *testing.T, want string) check {
	t.Helper()
	select {
	case c := <-w.checks:
		if c.reason != want {
			t.Fatalf("watcher checked for %q; want %q", c.reason, want)
		}
		return c
	case <-time.After(deadline):
		t.Fatalf("no %s check within %v", want, deadline)
		return check{}
	}
}

// waitTried waits until the watcher tries new content and returns why it looked.
func (w *watchRun) waitTried(t *testing.T) string {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case c := <-w.checks:
			if c.tried {
				return c.reason
			}
		case <-timeout:
			t.Fatalf("the watcher tried no new content within %v", deadline)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: not within %v", what, deadline)
		}
	}
}

func serving(r *Reloader, content string) func() bool {
	return func() bool {
		s := r.Status()
		return s.Revision == revision(content) && !s.Stale
	}
}

// configMapSwap publishes content the way the kubelet updates a mounted ConfigMap: a new
// timestamped directory, then the `..data` symlink flipped to it by renaming a new symlink
// over it, then the old directory removed.
func configMapSwap(t *testing.T, dir, stamp, content string) {
	t.Helper()
	ts := filepath.Join(dir, "..2026_11_22_"+stamp)
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ts, "rules.yaml"), content)
	data := filepath.Join(dir, "..data")
	old, _ := os.Readlink(data)
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, data); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchPicksUpChanges(t *testing.T) {
	events := WatchOptions{Debounce: 10 * time.Millisecond} // no poll: only an event can see the change
	for _, tc := range []struct {
		name   string
		opts   WatchOptions
		setup  func(t *testing.T, dir string) string // writes rules A, returns the path to load
		change func(t *testing.T, path string)       // replaces A with B
		reason string                                // of the check that sees it
	}{
		{
			name:   "rename",
			opts:   events,
			change: func(t *testing.T, path string) { replaceFile(t, path, rulesB) },
			reason: "fsnotify",
		},
		{
			name:   "in-place",
			opts:   events,
			change: func(t *testing.T, path string) { writeFile(t, path, rulesB) },
			reason: "fsnotify",
		},
		{
			name: "configmap",
			opts: events,
			setup: func(t *testing.T, dir string) string {
				configMapSwap(t, dir, "01_00_00.000000001", rulesA)
				path := filepath.Join(dir, "rules.yaml")
				if err := os.Symlink(filepath.Join("..data", "rules.yaml"), path); err != nil {
					t.Fatal(err)
				}
				return path
			},
			change: func(t *testing.T, path string) {
				configMapSwap(t, filepath.Dir(path), "02_00_00.000000002", rulesB)
			},
			reason: "fsnotify",
		},
		{
			name:   "poll-only",
			opts:   WatchOptions{NoEvents: true, Poll: 10 * time.Millisecond},
			change: func(t *testing.T, path string) { writeFile(t, path, rulesB) },
			reason: "poll",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "rules.yaml")
			if tc.setup != nil {
				path = tc.setup(t, dir)
			} else {
				writeFile(t, path, rulesA)
			}
			r, err := New(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			w := startWatch(t, r, tc.opts)
			tc.change(t, path)
			if reason := w.waitTried(t); reason != tc.reason {
				t.Errorf("change seen by %s; want %s", reason, tc.reason)
			}
			// An in-place write may be read half-done; the write's own event then follows.
			waitFor(t, "rules B serving", serving(r, rulesB))
			if got := decide(t, r); got != "reject" {
				t.Errorf("after the change: chat = %s; want reject", got)
			}
		})
	}
}

// TestWatchBusyDirectory: a file written without pause beside rules.yaml keeps the events
// coming, yet cannot postpone the check for ever.
func TestWatchBusyDirectory(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	w := startWatch(t, r, WatchOptions{Debounce: 20 * time.Millisecond})

	stop, done := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		noise := filepath.Join(filepath.Dir(path), "noise.log")
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := os.WriteFile(noise, []byte("x"), 0o644); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	replaceFile(t, path, rulesB)
	w.waitTried(t)
	waitFor(t, "rules B serving", serving(r, rulesB))
}

// TestWatchTriesContentOnce: a bad file is reported once, not on every poll, and the fix is
// still picked up.
func TestWatchTriesContentOnce(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	w := startWatch(t, r, WatchOptions{NoEvents: true, Poll: 5 * time.Millisecond})

	replaceFile(t, path, rulesBad) // atomically: a half-written file would be a second failure
	w.waitTried(t)
	if !r.Status().Stale {
		t.Fatalf("Status after a bad file = %+v; want stale", r.Status())
	}
	for range 5 {
		w.next(t, "poll")
	}
	if s := r.Status(); s.Failed != 1 || s.Revision != revision(rulesA) {
		t.Errorf("Status after 5 more polls of the bad file = %+v; want 1 failure, revision A", s)
	}

	writeFile(t, path, rulesB)
	waitFor(t, "rules B serving", serving(r, rulesB))
}

// TestWatchMissingFile: a deleted file leaves the old rules serving, stale, reported once;
// putting the same content back clears it.
func TestWatchMissingFile(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	w := startWatch(t, r, WatchOptions{NoEvents: true, Poll: 5 * time.Millisecond})

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.waitTried(t)
	if err := r.Status().LastError; !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LastError = %v; want a not-exist error", err)
	}
	for range 3 {
		w.next(t, "poll")
	}
	if s := r.Status(); s.Failed != 1 {
		t.Errorf("Failed = %d after 3 more polls of a missing file; want 1", s.Failed)
	}
	if got := decide(t, r); got != "accept" {
		t.Errorf("with the file gone: chat = %s; want accept", got)
	}

	writeFile(t, path, rulesA)
	waitFor(t, "rules A fresh again", serving(r, rulesA))
}

// TestWatchSeesChangeBeforeStart: a change made between New and Watch is not lost.
func TestWatchSeesChangeBeforeStart(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	writeFile(t, path, rulesB)
	startWatch(t, r, WatchOptions{})
	if !serving(r, rulesB)() {
		t.Errorf("Status = %+v after Watch's first check; want rules B", r.Status())
	}
}

func TestWatchNeedsEventsOrPoll(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	// The directory is gone, so it cannot be watched, and there is no poll to fall back on.
	if err := r.Watch(context.Background(), WatchOptions{}); err == nil {
		t.Error("Watch on a removed directory without a poll = nil; want an error")
	}
}

// Ready comes after the start-up check: a change made before Watch started already serves
// when it is called, so a caller that waits for it misses no change.
func TestWatchReadyAfterFirstCheck(t *testing.T) {
	r, path := newReloader(t, rulesA, Options{})
	writeFile(t, path, rulesB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- r.Watch(ctx, WatchOptions{Ready: func() { ready <- r.Current().Revision() }})
	}()
	select {
	case rev := <-ready:
		if rev != revision(rulesB) {
			t.Errorf("at Ready the revision serving is %.12s; want the file's %.12s", rev, revision(rulesB))
		}
	case err := <-done:
		t.Fatalf("Watch returned %v before Ready", err)
	case <-time.After(deadline):
		t.Fatal("Ready was not called")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
}
