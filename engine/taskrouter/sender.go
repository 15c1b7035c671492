package taskrouter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twilio/twilio-go/client"
	trv1 "github.com/twilio/twilio-go/rest/taskrouter/v1"

	"github.com/reservist/reservist/engine/outbox"
)

// DefaultBaseURL is where TaskRouter's REST API lives: --twilio-base-url's default.
const DefaultBaseURL = "https://taskrouter.twilio.com"

// DefaultTimeout bounds one REST call, connection to last byte.
const DefaultTimeout = 10 * time.Second

// Config configures a Sender.
type Config struct {
	Credentials Credentials // REST credentials: Credentials.REST must hold
	// BaseURL replaces scheme, host and any path prefix of every request; default
	// DefaultBaseURL.
	BaseURL string
	// Timeout bounds each call; default DefaultTimeout.
	Timeout time.Duration
}

// Sender carries actions out with twilio-go's UpdateTaskReservation. One client serves every
// call; it is safe for concurrent use.
type Sender struct {
	api       *trv1.ApiService
	transport *transport // names the URL calls go to in their errors
	timeout   time.Duration

	// calls holds what the transport learns about each call in flight, by ReservationSid:
	// twilio-go takes no context and its error type drops the status and Retry-After. The
	// outbox has at most one call in flight per reservation.
	calls sync.Map // string → *call
}

// call is one UpdateTaskReservation in flight.
type call struct {
	ctx        context.Context
	status     int
	retryAfter string
}

// NewSender checks cfg and returns a sender. It never logs or returns the token or secret.
func NewSender(cfg Config) (*Sender, error) {
	s := &Sender{timeout: cfg.Timeout}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	api, tr, err := restAPI(cfg.Credentials, cfg.BaseURL, &s.calls)
	if err != nil {
		return nil, err
	}
	s.api, s.transport = api, tr
	return s, nil
}

// Send posts a.Params to /v1/Workspaces/{WS}/Tasks/{WT}/Reservations/{WR}. It returns nil
// once TaskRouter answered 2xx, an *outbox.HTTPError for any other answer, an error wrapping
// outbox.ErrInvalidParams for parameters twilio-go cannot express, and the transport's error
// otherwise.
func (s *Sender) Send(ctx context.Context, a outbox.Action) error {
	params, err := updateParams(a.Params)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c := &call{ctx: ctx}
	if _, busy := s.calls.LoadOrStore(a.ReservationSid, c); busy {
		return fmt.Errorf("update reservation %s: a call for it is in flight already", a.ReservationSid)
	}
	defer s.calls.Delete(a.ReservationSid)
	_, err = s.api.UpdateTaskReservation(a.WorkspaceSid, a.TaskSid, a.ReservationSid, params)

	switch {
	case c.status >= 200 && c.status < 300:
		// Done, even if the body did not decode: the reservation has been updated and
		// sending again would be refused.
		return nil
	case c.status == 0 && err == nil:
		return errors.New("update reservation: no response")
	case c.status == 0:
		return fmt.Errorf("update reservation %s: %w", a.ReservationSid, s.transport.named(err))
	}
	he := &outbox.HTTPError{StatusCode: c.status, RetryAfter: parseRetryAfter(c.retryAfter, time.Now())}
	var te *client.TwilioRestError
	switch {
	case errors.As(err, &te):
		he.Code, he.Message, he.MoreInfo = te.Code, te.Message, te.MoreInfo
	case err != nil:
		he.Message = s.transport.named(err).Error()
	default:
		he.Message = http.StatusText(c.status)
	}
	return he
}

// updateParams hands the typed parameters to twilio-go: its UpdateTaskReservationParams
// names each field by its REST name in a JSON tag, so the parameters decode into it as they
// are. An unknown name or a value of the wrong type is an error wrapping
// outbox.ErrInvalidParams.
func updateParams(p outbox.Params) (*trv1.UpdateTaskReservationParams, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", outbox.ErrInvalidParams, err)
	}
	out := &trv1.UpdateTaskReservationParams{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return nil, fmt.Errorf("%w: %v", outbox.ErrInvalidParams, err)
	}
	if out.IfMatch != nil {
		// A header in twilio-go, not a form parameter of the update.
		return nil, fmt.Errorf("%w: unknown parameter \"If-Match\"", outbox.ErrInvalidParams)
	}
	return out, nil
}

// transport sends each call's request to the configured base URL, under the call's context,
// and keeps what twilio-go's error type drops: the status and Retry-After.
type transport struct {
	base   http.RoundTripper
	target *url.URL
	calls  *sync.Map
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, ok := t.calls.Load(reservationOf(req.URL.Path))
	if !ok {
		return nil, fmt.Errorf("taskrouter: request %s %s is no call of this sender", req.Method, req.URL.Path)
	}
	cl := c.(*call)
	r := req.Clone(cl.ctx)
	r.URL.Scheme = t.target.Scheme
	r.URL.Host = t.target.Host
	r.URL.Path = t.target.Path + req.URL.Path
	r.URL.RawPath = ""
	r.Host = ""
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	cl.status = resp.StatusCode
	cl.retryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode >= 400 {
		// twilio-go decodes error bodies but never closes them, which would hold the
		// connection; hand it a copy and close the real one.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, nil
}

// reservationOf is the ReservationSid that ends a reservation's path.
func reservationOf(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
