package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/internal/logbuf"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/server/internal/respond"
)

// emptyAnswer is the deferral TaskRouter documents: 200 with {}.
var (
	emptyAnswer       = []byte("{}")
	emptyAnswerLength = []string{"2"}
)

// The errors a caller is told about, with their statuses.
var (
	errMethod      = respond.New(http.StatusMethodNotAllowed, "method not allowed: the callback takes POST (or GET)")
	errTooLarge    = respond.New(http.StatusRequestEntityTooLarge, "request body is over 1 MiB")
	errNotForm     = respond.New(http.StatusBadRequest, "the body must be application/x-www-form-urlencoded")
	errBadForm     = respond.New(http.StatusBadRequest, "the body does not parse as a form")
	errBadQuery    = respond.New(http.StatusBadRequest, "the query string does not parse as a form")
	errSignature   = respond.New(http.StatusForbidden, "X-Twilio-Signature is missing or does not match")
	errUnavailable = respond.New(http.StatusServiceUnavailable, "the decision cannot be kept for later; use the fallback URL")
)

// errNoOutbox is why a decision cannot be handed to the outbox without one; it is logged,
// not answered.
var errNoOutbox = errors.New("no outbox")

// lateStoreWait bounds the store's time for a decision that missed the response budget
// when there is no budget to bound it: past TaskRouter's own 5 seconds nothing waits for it.
const lateStoreWait = 5 * time.Second

// Timeouts knows the TaskReservationTimeout of each Workflow (engine/taskrouter.Timeouts).
// It is asked once per decision that goes by REST, on the callback's goroutine, so it must
// answer at once.
type Timeouts interface {
	// ReservationTimeout is the timeout of the Workflow a callback that arrived at now
	// names, as its AccountSid, WorkspaceSid and WorkflowSid parameters name it.
	ReservationTimeout(now time.Time, accountSid, workspaceSid, workflowSid string) time.Duration
}

// callback answers assignment callbacks: checks the request in the documented order
// (method, size, form, signature), decides it, and answers or hands the decision to the
// outbox.
type callback struct {
	rules     reload.Source
	outbox    outbox.Outbox
	validator *Validator // nil: unsigned callbacks are accepted
	public    *url.URL
	budget    time.Duration
	timeout   time.Duration
	timeouts  Timeouts // nil: timeout for every Workflow
	log       *slog.Logger
	decisions *slog.Logger
	// decisionsJSON is decisions' handler when it is logbuf's JSON handler.
	decisionsJSON *logbuf.JSONHandler
	metrics       *Metrics
	budgets       sync.Pool // *budget whose timer is stopped

	outcomes *outcomes.Tracker                  // Options.Outcomes
	observe  func(url.Values, *engine.Decision) // Options.Observe
	now      func() time.Time                   // Options.Now

	beforeDecide func() // tests hold a decision back with it
}

func newCallback(o Options) *callback {
	o = o.withDefaults()
	c := &callback{
		rules:        o.Rules,
		outbox:       o.Outbox,
		public:       o.PublicURL,
		budget:       o.ResponseBudget,
		timeout:      o.ReservationTimeout,
		timeouts:     o.Timeouts,
		log:          o.Logger,
		decisions:    o.DecisionLog,
		metrics:      o.Metrics,
		outcomes:     o.Outcomes,
		observe:      o.Observe,
		now:          o.Now,
		beforeDecide: o.beforeDecide,
	}
	c.decisionsJSON, _ = o.DecisionLog.Handler().(*logbuf.JSONHandler)
	if o.AuthToken != "" {
		c.validator = NewValidator(o.AuthToken)
	}
	return c
}

func (c *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	params, err := c.params(r)
	if err != nil {
		c.refuse(w, r, err, received)
		return
	}
	if c.validator != nil {
		signed := params
		if r.Method == http.MethodGet {
			signed = nil // a GET's parameters are part of the signed URL
		}
		u := signedURL(c.public, r)
		if !c.validator.Valid(u, signed, r.Header.Get(SignatureHeader)) {
			respond.Err(w, errSignature)
			c.metrics.callback("", "", OutcomeForbidden, time.Since(received))
			c.logForbidden(r, u, params)
			return
		}
	}

	rs := c.rules.Current() // this callback finishes on these rules, whatever reloads meanwhile
	d, answeredAt := c.decide(w, rs.Engine, params, received)
	late := !answeredAt.IsZero()
	rs.CountMatch(d.Rule)
	c.reportProblems(d)
	var res result
	if late {
		res = c.handOver(d, params, received)
	} else {
		res = c.answer(w, d, params, received)
		answeredAt = time.Now()
	}
	c.record(d, res, answeredAt.Sub(received))
	if c.outcomes != nil && res.outcome != OutcomeUnavailable { // a 503 is the fallback URL's to decide
		c.outcomes.Record(d.ReservationSid, d.Rule, received)
	}
	if c.observe != nil {
		c.observe(params, d)
	}
}

// result is how a decision was carried out, for the metrics and the decision log.
type result struct {
	via       rules.Via
	outcome   string
	duplicate bool // the outbox already had an action for the reservation
}

// answer answers a decision that is ready in time: the instruction, or {} once the outbox
// has stored what goes by REST.
func (c *callback) answer(w http.ResponseWriter, d *engine.Decision, params url.Values, received time.Time) result {
	res := result{via: d.Via(), outcome: OutcomeAnswered}
	switch {
	case !d.REST():
		respond.Raw(w, http.StatusOK, d.Response())
		if d.Instruction() == rules.Defer {
			res.outcome = OutcomeDeferred
		}
	default:
		// The response budget bounds the whole answer, the store's commit included: a
		// store that cannot commit in time is an outbox that cannot be written.
		ctx, cancel := c.storeContext(received)
		queued, err := c.put(ctx, d, params, received)
		cancel()
		switch {
		case err == nil:
			respond.Raw(w, http.StatusOK, d.Response())
			res.outcome, res.duplicate = OutcomeDeferred, !queued
		case d.Delay() == 0:
			// Better the instruction now than no decision at all.
			respond.Raw(w, http.StatusOK, d.Answer())
			res.via = rules.Response
			c.log.LogAttrs(context.Background(), slog.LevelWarn, "outbox refused the decision; answering it synchronously instead",
				logSid("reservation_sid", "WR", d.ReservationSid), slog.String("rule", d.Rule), slog.String("error", err.Error()))
		default:
			// A delayed decision cannot be answered now: 503 sends TaskRouter to the
			// Workflow's fallback URL.
			respond.Err(w, errUnavailable)
			res.outcome = OutcomeUnavailable
			c.log.LogAttrs(context.Background(), slog.LevelError, "outbox refused a delayed decision; answered 503",
				logSid("reservation_sid", "WR", d.ReservationSid), slog.String("rule", d.Rule), slog.String("error", err.Error()))
		}
	}
	if d.Rule == "on_error" && (res.outcome == OutcomeAnswered || res.outcome == OutcomeDeferred) {
		res.outcome = OutcomeOnError
	}
	return res
}

// handOver gives the outbox a decision that missed the response budget: {} is answered
// already.
func (c *callback) handOver(d *engine.Decision, params url.Values, received time.Time) result {
	res := result{via: rules.REST, outcome: OutcomeDeferred}
	if d.Rule == "on_error" {
		res.outcome = OutcomeOnError
	}
	switch {
	case d.Instruction() == rules.Defer:
		// {} was the decision anyway.
	default:
		wait := c.budget
		if wait <= 0 {
			wait = lateStoreWait
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		queued, err := c.put(ctx, d, params, received)
		cancel()
		if err != nil {
			c.log.LogAttrs(context.Background(), slog.LevelError, "decision lost: it missed the response budget and the outbox refused it",
				logSid("reservation_sid", "WR", d.ReservationSid), slog.String("rule", d.Rule), slog.String("error", err.Error()))
		}
		res.duplicate = err == nil && !queued
	}
	return res
}

// record counts a decided callback and writes its decision log line: SIDs, never
// attributes.
func (c *callback) record(d *engine.Decision, res result, took time.Duration) {
	attrs := [...]slog.Attr{
		logSid("reservation_sid", "WR", d.ReservationSid),
		logSid("task_sid", "WT", d.TaskSid),
		logSid("worker_sid", "WK", d.WorkerSid),
		slog.String("rule", d.Rule),
		slog.String("instruction", d.Instruction()),
		slog.String("via", string(res.via)),
		slog.Int64("latency_us", took.Microseconds()),
		slog.String("revision", d.Revision),
		slog.String("outcome", res.outcome),
		slog.Bool("duplicate", true),
	}
	n := len(attrs)
	if !res.duplicate {
		n-- // said only when it happens
	}
	// The line is written here rather than by LogAttrs, which would spend a runtime.Callers
	// on every callback for a source location this log never shows; serve's JSON handler
	// takes the attributes without a record.
	ctx := context.Background()
	switch h := c.decisions.Handler(); {
	case !h.Enabled(ctx, slog.LevelInfo):
	case c.decisionsJSON != nil:
		c.decisionsJSON.HandleAttrs(ctx, time.Now(), slog.LevelInfo, "callback", attrs[:n])
	default:
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "callback", 0)
		r.AddAttrs(attrs[:n]...)
		h.Handle(ctx, r)
	}
	// Counted after the line is written, so that whoever sees the count can read the line.
	c.metrics.callback(d.Rule, d.Instruction(), res.outcome, took)
}

// refuse answers a request whose method, size or form is wrong.
func (c *callback) refuse(w http.ResponseWriter, r *http.Request, err error, received time.Time) {
	if err == errMethod {
		w.Header().Set("Allow", "GET, POST")
	}
	respond.Err(w, err)
	c.metrics.callback("", "", OutcomeBadRequest, time.Since(received))
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "callback refused",
		slog.Int("status", respond.StatusOf(err)), slog.String("reason", err.Error()),
		slog.String("method", clip(r.Method, 16)), slog.String("path", clip(r.URL.Path, maxLogged)), slog.String("remote", r.RemoteAddr))
}

// params reads the callback's parameters: a POST's form body, a GET's query string.
func (c *callback) params(r *http.Request) (url.Values, error) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet:
		q, err := parseForm(r.URL.RawQuery)
		if err != nil {
			return nil, errBadQuery
		}
		return q, nil
	default:
		return nil, errMethod
	}
	return postForm(r)
}

// readBody reads a POST's body, refusing one over MaxBody. A body with a Content-Length (as
// TaskRouter sends) is read into a slice of exactly its size, which becomes the string
// without a copy: nothing else ever sees the slice, so the string's bytes cannot change.
// Only a length up to preallocMax is allocated before the bytes arrive, so that a client
// cannot make reservist hold a megabyte per connection by announcing it.
func readBody(r *http.Request) (string, error) {
	const preallocMax = 64 << 10
	switch n := r.ContentLength; {
	case n > MaxBody:
		return "", errTooLarge
	case n > 0 && n <= preallocMax:
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil { // net/http ends the body at n bytes
			return "", errBadForm // the client stopped sending or timed out
		}
		return unsafe.String(unsafe.SliceData(b), len(b)), nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1)) // chunked, or large: grows as it comes
	if err != nil {
		return "", errBadForm
	}
	if len(b) > MaxBody {
		return "", errTooLarge
	}
	return string(b), nil
}

// isForm reports whether a Content-Type is a form, with or without parameters.
func isForm(ct string) bool {
	const form = "application/x-www-form-urlencoded"
	if ct == form {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == form
}

// decide runs the engine within the response budget. When the budget runs out first, {}
// is answered at that moment and answeredAt says when; the decision is still returned, to
// go to the outbox.
//
// No goroutine is started per callback: a timer fires only when a decision is late, and
// then the timer's goroutine writes the answer while the engine is still busy. Timers that
// did not fire are used again.
func (c *callback) decide(w http.ResponseWriter, e *engine.Engine, params url.Values, received time.Time) (d *engine.Decision, answeredAt time.Time) {
	if c.budget <= 0 {
		return c.run(e, params, received), time.Time{}
	}
	left := c.budget - time.Since(received)
	if left <= 0 { // the request itself took the budget to arrive
		// As the timer does: sent now, with its length, while the engine decides.
		w.Header()["Content-Length"] = emptyAnswerLength
		respond.Raw(w, http.StatusOK, emptyAnswer)
		http.NewResponseController(w).Flush()
		return c.run(e, params, received), time.Now()
	}
	b := c.startBudget(w, left)
	defer func() {
		stopped := b.t.Stop()
		answeredAt = b.settle() // also on a panic, so that the timer cannot answer after it
		if stopped {            // the timer's function never ran and never will
			*b = budget{t: b.t}
			c.budgets.Put(b)
		}
	}()
	return c.run(e, params, received), time.Time{}
}

// startBudget arms a budget for w that expires after left.
func (c *callback) startBudget(w http.ResponseWriter, left time.Duration) *budget {
	if b, ok := c.budgets.Get().(*budget); ok {
		b.w = w
		b.t.Reset(left)
		return b
	}
	b := &budget{w: w}
	b.t = time.AfterFunc(left, b.expire)
	return b
}

// run decides; a callback without a usable Timestamp is decided at its arrival.
func (c *callback) run(e *engine.Engine, params url.Values, received time.Time) *engine.Decision {
	if c.beforeDecide != nil {
		c.beforeDecide()
	}
	if c.now != nil {
		received = c.now()
	}
	return e.Decide(params, received)
}

// budget decides who answers a callback: the handler with the decision, or the timer with
// {} when the budget runs out. Whoever comes first owns the ResponseWriter.
type budget struct {
	t       *time.Timer // runs expire
	mu      sync.Mutex
	w       http.ResponseWriter
	done    bool      // the handler has its decision; the timer must not answer
	expired time.Time // when the timer answered {}
}

func (b *budget) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	// The handler goes on deciding: send the answer now, not when it returns, with its
	// length (net/http cannot add it to a flushed response).
	b.w.Header()["Content-Length"] = emptyAnswerLength
	respond.Raw(b.w, http.StatusOK, emptyAnswer)
	http.NewResponseController(b.w).Flush()
	b.expired = time.Now()
}

// settle ends the race; it returns when the timer answered, or zero if it did not.
func (b *budget) settle() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	return b.expired
}

// storeContext bounds the outbox's write of a decision by the response budget, counted
// from the callback's arrival.
func (c *callback) storeContext(received time.Time) (context.Context, context.CancelFunc) {
	if c.budget <= 0 {
		return context.WithTimeout(context.Background(), lateStoreWait)
	}
	return context.WithDeadline(context.Background(), received.Add(c.budget))
}

// put hands a decision to the outbox. One whose SIDs are missing or of the wrong shape
// cannot go by REST, which is the same for the callback as an outbox that cannot store it:
// TaskRouter always sends them, so only a hand-made callback lacks them, and the check by
// shape keeps an oversized value from ever reaching the store (docs/http.md). The action's
// deadline is the timeout of the Workflow the callback's params name, after the callback.
func (c *callback) put(ctx context.Context, d *engine.Decision, params url.Values, received time.Time) (queued bool, err error) {
	if c.outbox == nil {
		return false, errNoOutbox
	}
	timeout := c.timeout
	if c.timeouts != nil {
		timeout = c.timeouts.ReservationTimeout(received, params.Get(engine.ParamAccountSid), d.WorkspaceSid, d.WorkflowSid)
	}
	a := d.Outbox(received, timeout)
	a.Private = privateParams(d.Action)
	if err := a.Validate(); err != nil {
		return false, err
	}
	return c.outbox.Put(ctx, a)
}

// privateParams are the REST names of the action's parameters that come from templates:
// they may hold attributes, which logs show only when they are SIDs.
func privateParams(a *rules.Action) []string {
	var out []string
	for _, p := range a.With {
		if !p.Const {
			out = append(out, p.Field.REST)
		}
	}
	return out
}

// reportProblems counts and logs what went wrong deciding, with the ReservationSid and
// never the attributes.
func (c *callback) reportProblems(d *engine.Decision) {
	for _, re := range d.RuleErrors {
		c.metrics.ruleErrors.WithLabelValues(re.Rule).Inc()
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "rule condition failed; the rule did not match",
			logSid("reservation_sid", "WR", d.ReservationSid), slog.String("rule", re.Rule),
			slog.String("error", redact(re.Err.Error())))
	}
	if d.Err != nil {
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "callback cannot be decided; on_error answers",
			logSid("reservation_sid", "WR", d.ReservationSid), slog.String("error", redact(d.Err.Error())))
	}
}

// logForbidden says which URL the signature was checked against and, when the request
// reached reservist under another scheme or host, that this is the likely cause.
func (c *callback) logForbidden(r *http.Request, validated string, params url.Values) {
	// Everything here comes from a request nobody vouched for: bounded, and the SID by shape.
	attrs := []slog.Attr{
		slog.String("url", clip(validated, maxLogged)),
		slog.Bool("signature_present", r.Header.Get(SignatureHeader) != ""),
		logSid("reservation_sid", "WR", params.Get(engine.ParamReservationSid)),
		slog.String("remote", r.RemoteAddr),
	}
	seen := requestBase(r)
	switch {
	case c.public != nil && !strings.EqualFold(seen, c.public.Scheme+"://"+c.public.Host):
		attrs = append(attrs, slog.String("request_url", clip(seen+r.URL.RequestURI(), maxLogged)),
			slog.String("hint", "the request arrived under another scheme or host than --public-url; a proxy changing them is the usual cause, and --public-url must be the URL TaskRouter calls"))
	case c.public == nil && (r.Header.Get("X-Forwarded-Proto") != "" || r.Header.Get("X-Forwarded-Host") != ""):
		attrs = append(attrs, slog.String("hint", "the request came through a proxy (X-Forwarded-* headers, which are not trusted); set --public-url to the scheme://host TaskRouter calls"))
	}
	c.log.LogAttrs(context.Background(), slog.LevelWarn, "callback signature check failed", attrs...)
}

// Values that error messages quote: a template's result (`not the string "…"`, `not 5000`)
// can be an attribute, and attributes hold personal data.
var (
	quoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	numbered = regexp.MustCompile(`\b(number|not) -?[0-9][0-9.e+-]*`)
)

// redact makes an engine error fit for the log: its first line (expr adds the source and a
// caret below, which belong in `reservist explain`), without the values it quotes, and
// bounded in length.
func redact(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = quoted.ReplaceAllString(s, `"…"`)
	s = numbered.ReplaceAllString(s, "$1 …")
	const max = 300
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// maxLogged bounds a value from a request in the log.
const maxLogged = 256

// clip bounds s to about n bytes, cut at a character boundary and marked when cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// logSid is a SID for the log: as it is when it has the shape of one (prefix and 32 hex
// digits) or is empty; otherwise a bounded, marked excerpt, so that an oversized or odd
// value sent by anyone cannot fill the log.
func logSid(key, prefix, s string) slog.Attr {
	if s == "" || outbox.ValidSid(prefix, s) {
		return slog.String(key, s)
	}
	return slog.String(key, "not a SID ("+strconv.Itoa(len(s))+" bytes): "+strconv.QuoteToASCII(clip(s, 40)))
}

// postForm reads a POST's form body, for callbacks and Event callbacks alike: its size, its
// content type, then the form.
func postForm(r *http.Request) (url.Values, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if !isForm(r.Header.Get("Content-Type")) {
		return nil, errNotForm
	}
	form, err := parseForm(body)
	if err != nil {
		return nil, errBadForm
	}
	return form, nil
}
