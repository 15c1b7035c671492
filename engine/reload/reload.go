// Package reload keeps the active rules: it loads rules.yaml, swaps a new rule set in only
// when it is fully valid (and passes the optional gate) and its content has not changed for a
// settle time, watches the file for changes, and reports what serves and why a
// reload failed.
//
// No reload waits on another, and none holds a lock while it reads the file, waits for it
// to settle, parses it or runs the gate: those happen outside, and the swap at the end
// takes the newest read. Only regular files of at most MaxFileSize are read (ReadFile), so
// that a FIFO, a device or a huge file at the path cannot hold a reload, readiness or
// shutdown.
package reload

import (
	"crypto/sha256"
	"encoding/hex"
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

// Revision is the sha256 of the file these rules were loaded from.
func (r *Rules) Revision() string { return r.Engine.Set().Revision }

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

// RuleMatches is one rule's match count, as /rules lists it.
type RuleMatches struct {
	Rule    string `json:"name"`
	Matches uint64 `json:"matches"`
}

// MatchCounts lists every rule in file order, then "default" and "on_error", with how many
// callbacks each decided since these rules were loaded.
func (r *Rules) MatchCounts() []RuleMatches {
	acts := r.Engine.Set().Actions()
	out := make([]RuleMatches, len(acts))
	for i, a := range acts {
		out[i] = RuleMatches{Rule: a.Name, Matches: r.Matches(a.Name)}
	}
	return out
}

// Status says what serves and how the last reload went: what /rules, /readyz and the
// metrics report.
type Status struct {
	Path          string
	Revision      string    // of the rules serving now
	LoadedAt      time.Time // when they were loaded
	Stale         bool      // the last reload failed; older rules still serve
	LastError     error     // why, when Stale: rules.Errors for a bad file, *GateError for a refused one
	LastAttemptAt time.Time
	LastSuccessAt time.Time // last load that left the file's content serving, changed or not
	Succeeded     uint64    // reloads that succeeded since start (the first load is not a reload)
	Failed        uint64    // reloads that failed since start
}

// Options configure a Reloader.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // clock; time.Now by default

	// Settle is how far apart two reads of the file must agree before its content replaces
	// the serving rules, so that a file still being written (in place, in chunks) is never
	// loaded half-written; DefaultSettle when zero. A file that keeps changing for
	// MaxSettle is a failed reload.
	Settle time.Duration

	// Gate vets a valid new rule set before it replaces the serving one; an error refuses it
	// exactly like a bad file. The serve command plugs the --reload-cases golden cases in
	// here, which keeps this package ignorant of case files. It also vets the first load, so
	// a restart cannot bring up rules a reload would have refused. nil accepts every valid
	// file. It may be slow: it runs outside the status lock, and requests keep being decided
	// by the serving rules meanwhile.
	Gate func(*engine.Engine) error
}

// GateError is a valid rule set that Options.Gate refused; the serving rules stay.
type GateError struct {
	Revision string // of the refused file
	Err      error  // the gate's reason, e.g. the failing golden cases and how they differ
}

func (e *GateError) Error() string {
	return fmt.Sprintf("rules revision %.12s refused by the reload gate: %v", e.Revision, e.Err)
}

func (e *GateError) Unwrap() error { return e.Err }

// Source is what serves the rules: the Reloader, or in tests whatever stands in for it.
type Source interface {
	// Current returns the rules serving now; a callback takes them once and finishes on
	// them.
	Current() *Rules
	// Status says what serves and how the last reload went.
	Status() Status
	// Reload reads the rules file again now; reason goes to the log.
	Reload(reason string) error
}

var _ Source = (*Reloader)(nil)

// DefaultSettle is Options.Settle's default.
const DefaultSettle = 250 * time.Millisecond

// MaxSettle bounds the wait for a file that keeps changing before the reload gives up, so
// that a reload (and a POST /-/reload, and the shutdown that waits for it) ends soon.
const MaxSettle = 2 * time.Second

// Reloader holds the active rules and replaces them on Reload or when Watch sees the file
// change. It is safe for concurrent use.
type Reloader struct {
	path string
	opts Options

	current atomic.Pointer[Rules]

	// reads numbers reloads in the order they began reading: the swap of an older read
	// never replaces what a newer one has applied.
	reads atomic.Uint64

	mu      sync.Mutex // guards what follows; never held while reading or compiling
	status  Status
	tried   string // checksum key of the content the watcher last tried; see read
	applied uint64 // the read whose outcome serves now
	// Since the status turned stale: when, and how many reloads have failed (for the line
	// that says it recovered).
	staleSince    time.Time
	staleFailures uint64

	// testHookChecked is called after each look Watch takes at the file, the first one
	// once it watches; tests wait on it instead of sleeping.
	testHookChecked func(reason string, tried bool)
}

// New loads the rules file; an invalid file is an error (rules.Errors lists every problem,
// *GateError says why the gate refused it).
func New(path string, opts Options) (*Reloader, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	r := &Reloader{path: path, opts: opts}
	data, key, err := r.read(nil)
	if err != nil {
		return nil, err
	}
	e, err := r.compile(data)
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	r.tried = key
	r.current.Store(newRules(e, now))
	r.status = Status{Path: path, Revision: e.Set().Revision, LoadedAt: now, LastAttemptAt: now, LastSuccessAt: now}
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

// Reload reads the file again and swaps it in if it is valid, passes the gate, and differs
// from what serves. On failure the old rules keep serving and the status turns stale until
// a good file loads. Unlike the watcher it always tries, even content that failed before:
// a person asked. reason ("SIGHUP", "api", …) goes to the log.
func (r *Reloader) Reload(reason string) error {
	seq := r.reads.Add(1)
	data, key, err := r.read(func(key string) bool { return key == r.Current().Revision() })
	r.mu.Lock()
	r.tried = key
	r.mu.Unlock()
	return r.apply(seq, reason, data, key, err)
}

// reloadIfChanged is Reload for the watcher: it skips content already tried, so a bad file
// is logged once rather than on every poll, while a fixed file is still picked up. It
// reports whether it tried.
func (r *Reloader) reloadIfChanged(reason string) (bool, error) {
	seq := r.reads.Add(1)
	tried := func(key string) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return key == r.tried
	}
	data, key, err := r.read(tried)
	if tried(key) {
		return false, nil
	}
	r.mu.Lock()
	r.tried = key
	r.mu.Unlock()
	return true, r.apply(seq, reason, data, key, err)
}

// read returns the file's content (following symlinks, as a ConfigMap's are) once it has not
// changed for a settle time — its modification time is that old, or two reads that far apart
// agree — with a key for it: the hex sha256, which is also the rules
// revision, or the error text when it cannot be read, so the same missing file is not
// reported on every poll either. A first read whose key done accepts (content that serves
// or was tried already) is returned at once: nothing would change.
func (r *Reloader) read(done func(key string) bool) (data []byte, key string, err error) {
	data, key, err = readOnce(r.path)
	if done != nil && done(key) {
		return data, key, err
	}
	if err == nil && r.unchangedFor(r.opts.Settle) {
		// Not written to for a settle time, as seen after the read: a second read could
		// only agree. Most looks at the file, and every start on a file at rest, end here.
		return data, key, err
	}
	for deadline := time.Now().Add(MaxSettle); time.Now().Before(deadline); {
		time.Sleep(r.opts.Settle)
		again, againKey, againErr := readOnce(r.path)
		if againKey == key {
			return again, againKey, againErr
		}
		data, key, err = again, againKey, againErr
	}
	err = fmt.Errorf("read rules: %s kept changing: it is loaded once two reads %v apart agree", r.path, r.opts.Settle)
	return nil, "error: " + err.Error(), err
}

// unchangedFor reports whether the file (through any symlinks) was last modified at least d
// ago. A time in the future, as a network file system's clock may give, counts as changed.
func (r *Reloader) unchangedFor(d time.Duration) bool {
	fi, err := os.Stat(r.path)
	if err != nil {
		return false
	}
	age := time.Since(fi.ModTime())
	return age >= d
}

// readOnce reads the file once, with its key.
func readOnce(path string) ([]byte, string, error) {
	data, err := ReadFile(path)
	if err != nil {
		err = fmt.Errorf("read rules: %w", err)
		return nil, "error: " + err.Error(), err
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]), nil
}

// compile parses a file and runs the gate over it.
func (r *Reloader) compile(data []byte) (*engine.Engine, error) {
	set, err := rules.Parse(r.path, data)
	if err != nil {
		return nil, err
	}
	e := engine.New(set)
	if r.opts.Gate != nil {
		if err := r.opts.Gate(e); err != nil {
			return nil, &GateError{Revision: set.Revision, Err: err}
		}
	}
	return e, nil
}

// apply compiles the content read by reload number seq and swaps it in, or records why it
// could not be. Compiling happens outside the lock; a read older than the one that serves
// now changes nothing.
func (r *Reloader) apply(seq uint64, reason string, data []byte, key string, err error) error {
	start := r.opts.Now()
	// The revision is the file's sha256, so equal keys mean the same rules: nothing to
	// parse, gate or swap, but a stale status is cleared (the bad file was reverted).
	if err == nil && key == r.Current().Revision() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if seq > r.applied {
			r.applied = seq
			r.succeeded(start, reason)
		}
		return nil
	}
	var e *engine.Engine
	if err == nil {
		e, err = r.compile(data)
	}
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq < r.applied {
		// A newer read has been applied meanwhile: it stands.
		return err
	}
	r.applied = seq
	if err != nil {
		r.status.LastAttemptAt = now
		if !r.status.Stale {
			r.staleSince, r.staleFailures = now, 0
		}
		r.staleFailures++
		r.status.Stale, r.status.LastError = true, err
		r.status.Failed++
		msg := "rules reload failed; previous rules keep serving"
		if _, refused := errors.AsType[*GateError](err); refused {
			msg = "rules reload refused by the gate; previous rules keep serving"
		}
		r.opts.Logger.Error(msg, "reason", reason, "path", r.path,
			"revision", r.status.Revision, "errors", rules.ErrorLines(err))
		return err
	}
	old := r.current.Load()
	r.current.Store(newRules(e, now))
	r.status.Revision, r.status.LoadedAt = e.Set().Revision, now
	r.succeeded(now, reason)
	r.opts.Logger.Info("rules reloaded", "reason", reason, "path", r.path,
		"revision", e.Set().Revision, "previous_revision", old.Revision(),
		"rules", len(e.Set().Rules), "took_seconds", now.Sub(start).Seconds())
	// A file that lost most of its rules is more often a mistake (a truncated copy, a bad
	// merge) than a decision; it serves, since it is valid, but says so.
	if was, is := len(old.Engine.Set().Rules), len(e.Set().Rules); 2*is < was {
		r.opts.Logger.Warn("the reloaded rules have far fewer rules than before; check that the file is complete",
			"path", r.path, "rules", is, "previous_rules", was, "revision", e.Set().Revision)
	}
	return nil
}

// succeeded records a successful reload; mu must be held.
func (r *Reloader) succeeded(now time.Time, reason string) {
	if r.status.Stale {
		r.opts.Logger.Info("rules reload recovered: the rules file loads again after failed reloads",
			"reason", reason, "path", r.path, "revision", r.status.Revision,
			"failed_reloads", r.staleFailures, "stale_seconds", now.Sub(r.staleSince).Seconds())
	}
	r.status.LastAttemptAt, r.status.LastSuccessAt = now, now
	r.status.Stale, r.status.LastError = false, nil
	r.status.Succeeded++
}
