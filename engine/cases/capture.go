// Package capture writes incoming callbacks out as golden-case files (`.form`, a raw form
// body; docs/cases.md), so that teams can turn real traffic into test cases: capture, review, run
// `reservist test --update`, review the golden files, commit.
//
// Capture is a bystander on the callback path. Add only puts the callback on a bounded
// queue and returns; one goroutine redacts and writes. When the queue is full the callback
// is dropped and counted rather than waited for, and a file that cannot be written (a full
// disk, a directory that is not writable) is logged and counted, never answered: a
// debugging aid must not slow down or fail call routing.
package cases

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/engine"
)

// DefaultCaptureMax is --capture-max's default: enough callbacks to find the interesting ones,
// few enough to review.
const DefaultCaptureMax = 1000

// queueSize bounds the callbacks waiting to be written; beyond it they are dropped. A burst
// of this many is absorbed while the disk is slow.
const queueSize = 256

// recount is how often a full directory is counted again, so that moving files out of it
// resumes capture without a restart, while a steady stream of callbacks into a full
// directory does not read it once per callback.
const recount = time.Second

// Reasons a callback was not captured, the metric's label values.
const (
	DroppedBusy  = "busy"  // the queue was full: the writer is behind (a slow disk)
	DroppedFull  = "full"  // the directory holds --capture-max case files
	DroppedError = "error" // the file could not be written
)

// CaptureOptions configure a Capturer.
type CaptureOptions struct {
	Dir    string   // where case files go; created if missing
	Max    int      // at most this many .form files in Dir; DefaultCaptureMax if 0
	Redact []string // attribute keys whose values are replaced, at any depth, in any case
	Logger *slog.Logger
	Now    func() time.Time // for file names; time.Now by default

	written func(path string) // tests learn of each file written
}

// Capturer writes callbacks to case files in the background. Its methods are safe for
// concurrent use.
type Capturer struct {
	opts   CaptureOptions
	redact map[string]bool // lower-cased keys
	queue  chan item
	stop   chan struct{} // closed by Close: the writer drains the queue and returns
	done   chan struct{} // closed when the writer has returned
	once   sync.Once

	captured prometheus.Counter
	dropped  *prometheus.CounterVec
	busy     prometheus.Counter // dropped{reason="busy"}, looked up once: Observe is on the callback path

	// Only the writer goroutine touches these.
	count     int       // .form files in Dir, as last counted plus those written since
	countedAt time.Time // when Dir was last counted; zero: never
	paused    bool      // the directory was full at the last write attempt
	failures  int       // write errors not yet logged
	loggedAt  time.Time // when the last write error was logged
}

type item struct {
	at      time.Time
	params  url.Values
	decided time.Time // the callback's time its decision was made at
}

// New starts a Capturer's writer; Close stops it. The directory is created if missing;
// failing to create it is logged, not returned, like any later write error, because capture
// must not keep the callback server from starting.
func NewCapturer(o CaptureOptions) *Capturer {
	if o.Max <= 0 {
		o.Max = DefaultCaptureMax
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Capturer{
		opts:   o,
		redact: map[string]bool{},
		queue:  make(chan item, queueSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		captured: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reservist_capture_written_total",
			Help: "Callbacks written to --capture-dir as case files.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservist_capture_dropped_total",
			Help: "Callbacks not captured, by reason: busy (the writer was behind), full (--capture-max files), error (the file could not be written).",
		}, []string{"reason"}),
	}
	for _, k := range o.Redact {
		c.redact[strings.ToLower(k)] = true
	}
	for _, r := range []string{DroppedBusy, DroppedFull, DroppedError} {
		c.dropped.WithLabelValues(r) // present at 0, so that a rate() of it works from the start
	}
	c.busy = c.dropped.WithLabelValues(DroppedBusy)
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		o.Logger.Error("capture directory cannot be created; callbacks are answered but not captured", "dir", o.Dir, "error", err)
	}
	go c.run()
	return c
}

// Register adds the capture metrics to a registry.
func (c *Capturer) Register(reg prometheus.Registerer) error {
	for _, m := range []prometheus.Collector{c.captured, c.dropped} {
		if err := reg.Register(m); err != nil {
			return err
		}
	}
	return nil
}

// Observe queues a callback for writing, or drops it when the queue is full. It never
// blocks. It keeps params, which must not change afterwards. It fits server.CaptureOptions.Observe.
func (c *Capturer) Observe(params url.Values, d *engine.Decision) {
	it := item{at: c.opts.Now(), params: params}
	if d != nil {
		it.decided = d.At
	}
	select {
	case c.queue <- it:
	default:
		c.busy.Inc()
	}
}

// Close writes what is queued and stops the writer. Callbacks observed after Close are
// dropped as busy once the queue is full; they never block or panic.
func (c *Capturer) Close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

func (c *Capturer) run() {
	defer close(c.done)
	for {
		select {
		case it := <-c.queue:
			c.write(it)
		case <-c.stop:
			for {
				select {
				case it := <-c.queue:
					c.write(it)
				default:
					c.flushFailures()
					return
				}
			}
		}
	}
}

// write writes one callback, unless the directory is full.
func (c *Capturer) write(it item) {
	if !c.room(it.at) {
		c.dropped.WithLabelValues(DroppedFull).Inc()
		return
	}
	path, err := c.writeFile(it)
	if err != nil {
		c.dropped.WithLabelValues(DroppedError).Inc()
		c.failed(it.at, err)
		return
	}
	c.count++
	c.captured.Inc()
	if c.opts.written != nil {
		c.opts.written(path)
	}
}

// room reports whether one more file fits under Max. It counts the directory at the first
// write and, while it is full, again at most once per recount interval.
func (c *Capturer) room(now time.Time) bool {
	if c.countedAt.IsZero() || (c.count >= c.opts.Max && now.Sub(c.countedAt) >= recount) {
		n, err := countCases(c.opts.Dir)
		if err == nil {
			c.count, c.countedAt = n, now
		}
		// An unreadable directory is reported by the write that follows.
	}
	full := c.count >= c.opts.Max
	if full && !c.paused {
		c.opts.Logger.Warn("capture directory holds --capture-max case files; capture is paused until files are moved out of it",
			"dir", c.opts.Dir, "max", c.opts.Max)
	} else if !full && c.paused {
		c.opts.Logger.Info("capture resumed", "dir", c.opts.Dir)
	}
	c.paused = full
	return !full
}

// countCases counts the .form files directly in dir: captured cases and any others, since
// the bound is on what the directory holds.
func countCases(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() && filepath.Ext(e.Name()) == ".form" {
			n++
		}
	}
	return n, nil
}

// writeFile writes the case through a temporary file, so that `reservist test` never reads
// half a case, under a name no other file has.
func (c *Capturer) writeFile(it item) (string, error) {
	body := []byte(c.encode(it) + "\n")
	base := fileName(it.at, it.params.Get(engine.ParamReservationSid))
	tmp, err := os.CreateTemp(c.opts.Dir, ".capture-*.tmp")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(body)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	for i := 0; ; i++ {
		name := base + ".form"
		if i > 0 {
			name = fmt.Sprintf("%s-%d.form", base, i)
		}
		path := filepath.Join(c.opts.Dir, name)
		if _, err := os.Lstat(path); err == nil {
			continue // the same reservation in the same nanosecond: rare, but never overwrite
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return "", err
		}
		return path, nil
	}
}

// fileName is the case's name without extension: the time the callback arrived (UTC, to the
// nanosecond, so that names sort in arrival order) and its ReservationSid.
func fileName(at time.Time, reservation string) string {
	sid := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, reservation)
	if len(sid) > 34 {
		sid = sid[:34]
	}
	if sid == "" {
		sid = "no-reservation"
	}
	return at.UTC().Format("20060102T150405.000000000Z") + "-" + sid
}

// encode is the form body to write: the parameters as received, with the attributes'
// redacted keys replaced. A callback without a usable Timestamp was decided at its arrival,
// which becomes its Timestamp, so that the case replays as it was decided.
func (c *Capturer) encode(it item) string {
	params := engine.WithTimestamp(it.params, it.decided)
	if len(c.redact) == 0 {
		return params.Encode()
	}
	out := make(url.Values, len(params))
	for k, vs := range params {
		if k == engine.ParamTaskAttributes || k == engine.ParamWorkerAttributes {
			red := make([]string, len(vs))
			for i, v := range vs {
				red[i] = Redact(v, c.redact)
			}
			vs = red
		}
		out[k] = vs
	}
	return out.Encode()
}

// failed logs a write error: the first at once, then at most one line a minute with how
// many failed meanwhile, so that a full disk under steady traffic does not flood the log.
func (c *Capturer) failed(now time.Time, err error) {
	c.failures++
	if !c.loggedAt.IsZero() && now.Sub(c.loggedAt) < time.Minute {
		return
	}
	c.opts.Logger.Error("callback not captured: the case file cannot be written; callbacks are still answered",
		"dir", c.opts.Dir, "error", err, "failed", c.failures)
	c.failures, c.loggedAt = 0, now
}

// flushFailures logs the write errors not logged yet, at Close.
func (c *Capturer) flushFailures() {
	if c.failures > 0 {
		c.opts.Logger.Error("callbacks not captured: the case files could not be written", "dir", c.opts.Dir, "failed", c.failures)
		c.failures = 0
	}
}

// Redacted is what a redacted value is replaced with.
const Redacted = "[redacted]"

// Redact replaces the value of every object key in the JSON text attrs whose lower-cased name
// is in keys, at any depth (inside objects and lists). Text that is not JSON is replaced
// whole: it cannot be searched for the keys, and the replacement is not JSON either, so the
// case is still decided by on_error. Text without any such key is returned unchanged, in its
// original formatting.
func Redact(attrs string, keys map[string]bool) string {
	if len(keys) == 0 {
		return attrs
	}
	dec := jsonDecoder(attrs)
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return Redacted
	}
	v, changed := redactValue(v, keys)
	if !changed {
		return attrs
	}
	var b bytes.Buffer
	enc := jsonEncoder(&b)
	if err := enc.Encode(v); err != nil {
		return Redacted // cannot happen for decoded JSON; never write the original then
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func redactValue(v any, keys map[string]bool) (any, bool) {
	changed := false
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if keys[strings.ToLower(k)] {
				x[k], changed = Redacted, true
				continue
			}
			if e, c := redactValue(e, keys); c {
				x[k], changed = e, true
			}
		}
	case []any:
		for i, e := range x {
			if e, c := redactValue(e, keys); c {
				x[i], changed = e, true
			}
		}
	}
	return v, changed
}

func jsonDecoder(s string) *json.Decoder {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber() // numbers come out as they went in, not as float64
	return dec
}

func jsonEncoder(b *bytes.Buffer) *json.Encoder {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false) // attributes are not HTML; keep URLs readable in the case file
	return enc
}
