// Package reload keeps the active rules: it loads rules.yaml, swaps a new rule set in only
// when it is fully valid, and reports what serves and why a reload failed (SPEC §6).
package reload

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/rules"
)

// Rules is one loaded rule set with its engine. Callbacks take the current Rules once and
// finish on it, so a swap never changes the rules under a request in flight.
type Rules struct {
	Engine   *engine.Engine
	LoadedAt time.Time
	matches  map[string]*atomic.Uint64 // by rule name, plus "default" and "on_error"
}

func newRules(e *engine.Engine, now time.Time) *Rules {
	r := &Rules{Engine: e, LoadedAt: now, matches: map[string]*atomic.Uint64{}}
	for _, a := range e.Set().Actions() {
		r.matches[a.Name] = new(atomic.Uint64)
	}
	return r
}

// CountMatch records that a rule (or "default" / "on_error") decided a callback.
func (r *Rules) CountMatch(rule string) {
	if c, ok := r.matches[rule]; ok {
		c.Add(1)
	}
}

// Matches returns how many callbacks a rule decided since these rules were loaded.
func (r *Rules) Matches(rule string) uint64 {
	if c, ok := r.matches[rule]; ok {
		return c.Load()
	}
	return 0
}

// Status says what serves and how the last reload went.
type Status struct {
	Path          string
	Revision      string    // of the rules serving now
	LoadedAt      time.Time // when they were loaded
	Stale         bool      // the last reload failed; older rules still serve
	LastError     error     // why, when Stale (a rules.Errors for a bad file)
	LastAttemptAt time.Time
}

// Options configure a Reloader.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // clock; time.Now by default
}

// Reloader holds the active rules and replaces them on Reload.
type Reloader struct {
	path string
	opts Options

	current atomic.Pointer[Rules]

	mu     sync.Mutex // serialises loads and guards status
	status Status
}

// New loads the rules file; an invalid file is an error (rules.Errors lists every problem).
func New(path string, opts Options) (*Reloader, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Reloader{path: path, opts: opts}
	e, err := r.load()
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	r.current.Store(newRules(e, now))
	r.status = Status{Path: path, Revision: e.Set().Revision, LoadedAt: now, LastAttemptAt: now}
	return r, nil
}

// Current returns the rules serving now.
func (r *Reloader) Current() *Rules { return r.current.Load() }

// Status returns what serves and how the last reload went.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Reload reads the file again and swaps it in if it is valid and differs from what serves.
// On failure the old rules keep serving and the status turns stale until a good file loads.
// reason ("SIGHUP", "fsnotify", "poll", "api") goes to the log.
func (r *Reloader) Reload(reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	r.status.LastAttemptAt = now
	e, err := r.load()
	if err != nil {
		r.status.Stale, r.status.LastError = true, err
		r.opts.Logger.Error("rules reload failed; previous rules keep serving",
			"reason", reason, "path", r.path, "revision", r.status.Revision, "errors", errorLines(err))
		return err
	}
	old := r.current.Load()
	r.status.Stale, r.status.LastError = false, nil
	if e.Set().Revision == old.Engine.Set().Revision {
		return nil
	}
	r.current.Store(newRules(e, now))
	r.status.Revision, r.status.LoadedAt = e.Set().Revision, now
	r.opts.Logger.Info("rules reloaded", "reason", reason, "path", r.path,
		"revision", e.Set().Revision, "previous_revision", old.Engine.Set().Revision, "rules", len(e.Set().Rules))
	return nil
}

func (r *Reloader) load() (*engine.Engine, error) {
	data, err := os.ReadFile(r.path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	set, err := rules.Parse(r.path, data)
	if err != nil {
		return nil, err
	}
	return engine.New(set), nil
}

// errorLines lists a load error one FILE:LINE:COL line each.
func errorLines(err error) []string {
	var re rules.Errors
	if errors.As(err, &re) {
		lines := make([]string, len(re))
		for i, d := range re {
			lines[i] = d.String()
		}
		return lines
	}
	return []string{err.Error()}
}
