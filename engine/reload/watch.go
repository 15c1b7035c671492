package reload

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long Watch waits after the last file-system event before reading
// the file, when WatchOptions.Debounce is zero.
const DefaultDebounce = 100 * time.Millisecond

// WatchOptions configure Watch.
type WatchOptions struct {
	// Debounce is the quiet time after the last event before the file is read: editors and
	// ConfigMap updates arrive as bursts (create, write, chmod, rename, remove), and reading
	// in the middle of one could see a half-written file. DefaultDebounce when zero.
	Debounce time.Duration
	// Poll is the interval of the checksum poll that catches changes no event reports
	// (network file systems, a symlink chain leaving the directory); 0 disables it.
	Poll time.Duration
	// NoEvents turns file-system events off, leaving only the poll.
	NoEvents bool
	// Ready, when set, is called once the directory is watched and the file checked: from
	// then on no change goes unseen. It is not called when Watch fails to start.
	Ready func()
}

// Watch reloads the rules whenever the file's content changes, until ctx is done; then it
// returns nil. It watches the file's directory rather than the file, because editors save
// by renaming a new file over the old one and Kubernetes updates a ConfigMap by flipping a
// `..data` symlink; either way a watch on the old inode would go quiet. Any event in the
// directory leads to a read, and only content whose sha256 differs from what was last
// tried is reloaded, so noise costs a hash and a bad file is reported once.
//
// If events cannot be watched (inotify limits, say) Watch logs it and polls, or returns
// the error when the poll is disabled too. Run it in its own goroutine; SIGHUP and
// POST /-/reload go through Reload, which may be called at the same time.
//
// Each look at the file runs apart from the loop, one at a time (events meanwhile bring one
// more look after it), so that Watch returns as soon as ctx is done, even while a look
// waits for a file to settle.
func (r *Reloader) Watch(ctx context.Context, opts WatchOptions) error {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if !opts.NoEvents {
		w, err := r.watchDir()
		switch {
		case err == nil:
			defer w.Close()
			events, errs = w.Events, w.Errors
		case opts.Poll > 0:
			r.opts.Logger.Warn("cannot watch the rules directory; polling only",
				"path", r.path, "poll_seconds", opts.Poll.Seconds(), "error", err)
		default:
			return err
		}
	}
	var poll <-chan time.Time
	if opts.Poll > 0 {
		t := time.NewTicker(opts.Poll)
		defer t.Stop()
		poll = t.C
	}
	// The debounce timer starts stopped; each event pushes it back (see settle).
	debounce := time.NewTimer(opts.Debounce)
	debounce.Stop()
	defer debounce.Stop()
	var burst time.Time // when the first event not yet checked arrived; zero if none

	// Looks at the file run one at a time, apart from this loop.
	looked := make(chan struct{}, 1)
	looking, again := false, ""
	look := func(reason string) {
		if looking {
			again = reason
			return
		}
		looking = true
		go func() {
			r.check(reason)
			looked <- struct{}{}
		}()
	}

	// A change made between New and the watch starting raised no event we saw.
	r.check("watch")
	if opts.Ready != nil {
		opts.Ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil // a look under way finishes on its own
		case <-looked:
			looking = false
			if again != "" {
				reason := again
				again = ""
				look(reason)
			}
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			r.opts.Logger.Debug("rules directory event", "event", ev.String())
			burst = settle(debounce, burst, opts.Debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Overflow or a removed directory; the next event or poll recovers.
			r.opts.Logger.Warn("watching the rules directory", "path", r.path, "error", err)
			burst = settle(debounce, burst, opts.Debounce)
		case <-debounce.C:
			burst = time.Time{}
			look("fsnotify")
		case <-poll:
			look("poll")
		}
	}
}

// maxBurst caps how long a burst of events may postpone the check, in debounce intervals:
// a busy neighbour in the directory (a log file, say) must not starve the rules file.
const maxBurst = 10

// settle pushes the debounce timer back by d after an event, but never past maxBurst·d after
// the burst's first event, and returns when that burst began.
func settle(t *time.Timer, burst time.Time, d time.Duration) time.Time {
	now := time.Now()
	if burst.IsZero() {
		burst = now
	}
	t.Reset(min(d, max(burst.Add(maxBurst*d).Sub(now), 0)))
	return burst
}

func (r *Reloader) watchDir() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch rules: %w", err)
	}
	dir := filepath.Dir(r.path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch rules directory %s: %w", dir, err)
	}
	return w, nil
}

// check reloads when the content changed; Reload logged any failure already.
func (r *Reloader) check(reason string) {
	tried, _ := r.reloadIfChanged(reason)
	if r.testHookChecked != nil {
		r.testHookChecked(reason, tried)
	}
}
