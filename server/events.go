package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/server/internal/respond"
)

// The Event callback parameters reservist reads (docs/http.md, "Event callbacks"). Every
// other one, the attributes among them, is only signed, never read or logged.
const (
	paramEventType      = "EventType"
	paramResourceType   = "ResourceType"
	paramResourceSid    = "ResourceSid"
	paramReservationSid = "ReservationSid"
	paramTaskSid        = "TaskSid"
)

// What an event ends: the pending action of its reservation, or every one of its task's.
const (
	endsReservation = iota + 1
	endsTask
)

// eventEnds lists the event types that end pending actions. Any other type is answered 204
// and ignored.
var eventEnds = map[string]int{
	"reservation.accepted":  endsReservation,
	"reservation.rejected":  endsReservation,
	"reservation.timeout":   endsReservation,
	"reservation.canceled":  endsReservation,
	"reservation.rescinded": endsReservation,
	"reservation.completed": endsReservation,
	"reservation.wrapup":    endsReservation,
	"task.canceled":         endsTask,
	"task.deleted":          endsTask,
	"task.completed":        endsTask,
}

// Results of an Event callback, the result label of reservist_events_total.
const (
	EventHandled    = "handled"     // a type reservist acts on, for a reservation or task SID of the right shape
	EventIgnored    = "ignored"     // a type reservist has no use for, or no SID to act on
	EventForbidden  = "forbidden"   // the signature check failed
	EventBadRequest = "bad_request" // method, size or form refused
)

var errEventsMethod = respond.New(http.StatusMethodNotAllowed, "method not allowed: Event callbacks take POST")

// superseding bounds the outbox's work for one event: TaskRouter waits 15 seconds.
const superseding = 5 * time.Second

// noContent is the answer TaskRouter expects to an Event callback: 204 with a JSON content
// type.
var noContent = []byte(nil)

// events answers TaskRouter's Event callbacks: it checks them as callbacks are checked
// (method, size, form, signature), ends the pending actions an event says are over, and
// hands reservation outcomes to the tracker.
type events struct {
	validator *Validator // nil: unsigned events are accepted
	public    *url.URL
	supersede func(ctx context.Context, reservationSid, taskSid, event string) (int, error)
	outcomes  *outcomes.Tracker
	log       *slog.Logger
	metrics   *Metrics
}

func newEvents(o Options) *events {
	e := &events{public: o.PublicURL, supersede: o.Supersede, outcomes: o.Outcomes, log: o.Logger, metrics: o.Metrics}
	if o.AuthToken != "" {
		e.validator = NewValidator(o.AuthToken)
	}
	return e
}

func (e *events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, err := e.params(r)
	if err != nil {
		if err == errEventsMethod {
			w.Header().Set("Allow", "POST")
		}
		respond.Err(w, err)
		e.metrics.event("", EventBadRequest)
		e.log.LogAttrs(r.Context(), slog.LevelInfo, "event callback refused",
			slog.Int("status", respond.StatusOf(err)), slog.String("reason", err.Error()),
			slog.String("method", clip(r.Method, 16)), slog.String("remote", r.RemoteAddr))
		return
	}
	if e.validator != nil {
		u := signedURL(e.public, r)
		if !e.validator.Valid(u, params, r.Header.Get(SignatureHeader)) {
			respond.Err(w, errSignature)
			e.metrics.event("", EventForbidden)
			e.logForbidden(r, u, params)
			return
		}
	}
	typ := params.Get(paramEventType)
	result := e.handle(r.Context(), typ, params)
	respond.Raw(w, http.StatusNoContent, noContent)
	e.metrics.event(typ, result)
}

// handle acts on an authentic event: it ends the pending actions it names and counts the
// reservation's outcome.
func (e *events) handle(ctx context.Context, typ string, params url.Values) string {
	var sid, taskSid string
	switch eventEnds[typ] {
	case endsReservation:
		sid = resourceSid(params, paramReservationSid, "Reservation")
		if !outbox.ValidSid("WR", sid) {
			return EventIgnored
		}
	case endsTask:
		taskSid = resourceSid(params, paramTaskSid, "Task")
		if !outbox.ValidSid("WT", taskSid) {
			return EventIgnored
		}
	default:
		return EventIgnored
	}
	if outcome, ok := outcomes.OutcomeOf(typ); ok && e.outcomes != nil {
		e.outcomes.Outcome(sid, outcome)
	}
	if e.supersede == nil {
		return EventHandled
	}
	// The answer does not wait on the caller: a TaskRouter that gave up must not leave the
	// outbox half done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), superseding)
	n, err := e.supersede(sctx, sid, taskSid, typ)
	cancel()
	attrs := []slog.Attr{slog.String("event", typ), logSid("reservation_sid", "WR", sid), logSid("task_sid", "WT", taskSid)}
	if err != nil {
		// The action, if any, is refused as no longer pending when it is sent, and ends as
		// superseded then: the event is still answered.
		e.log.LogAttrs(ctx, slog.LevelWarn, "event callback: the outbox could not end the pending actions it names; they end when TaskRouter refuses them",
			append(attrs, slog.String("error", err.Error()))...)
		return EventHandled
	}
	e.log.LogAttrs(ctx, slog.LevelDebug, "event callback", append(attrs, slog.Int("superseded", n))...)
	return EventHandled
}

// resourceSid is the SID an event names in param, or its ResourceSid when it is about a
// resource of that type (TaskRouter capitalizes it: Task, Reservation).
func resourceSid(params url.Values, param, resourceType string) string {
	if s := params.Get(param); s != "" {
		return s
	}
	if strings.EqualFold(params.Get(paramResourceType), resourceType) {
		return params.Get(paramResourceSid)
	}
	return ""
}

// params reads an Event callback's form body, as a callback's is read.
func (e *events) params(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, errEventsMethod
	}
	return postForm(r)
}

// logForbidden says which URL an event's signature was checked against, as a callback's
// refusal does; everything in it comes from a request nobody vouched for, so it is bounded.
func (e *events) logForbidden(r *http.Request, validated string, params url.Values) {
	attrs := []slog.Attr{
		slog.String("url", clip(validated, maxLogged)),
		slog.Bool("signature_present", r.Header.Get(SignatureHeader) != ""),
		slog.String("event", clip(params.Get(paramEventType), 64)),
		slog.String("remote", r.RemoteAddr),
	}
	if e.public != nil && !strings.EqualFold(requestBase(r), e.public.Scheme+"://"+e.public.Host) {
		attrs = append(attrs, slog.String("hint", "the request arrived under another scheme or host than --public-url; a proxy changing them is the usual cause, and --public-url must be the URL TaskRouter calls"))
	}
	e.log.LogAttrs(r.Context(), slog.LevelWarn, "event callback signature check failed", attrs...)
}
