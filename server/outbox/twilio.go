package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	taskrouter "github.com/twilio/twilio-go/rest/taskrouter/v1"
)

// DefaultBaseURL is where TaskRouter's REST API lives.
const DefaultBaseURL = "https://taskrouter.twilio.com"

// DefaultTimeout bounds one REST call, connection to last byte.
const DefaultTimeout = 10 * time.Second

// TwilioConfig configures a TwilioSender.
type TwilioConfig struct {
	// AccountSid is required. With AuthToken it is also the username.
	AccountSid string
	AuthToken  string
	// APIKey (SK…) and APISecret, when both set, authenticate instead of
	// the auth token.
	APIKey    string
	APISecret string
	// BaseURL replaces scheme, host and any path prefix of every request;
	// default DefaultBaseURL.
	BaseURL string
	// Timeout bounds each call; default DefaultTimeout.
	Timeout time.Duration
}

// TwilioSender sends actions with twilio-go's UpdateTaskReservation.
type TwilioSender struct {
	accountSid string
	username   string
	password   string
	base       *url.URL
	timeout    time.Duration
	transport  *http.Transport
}

var (
	accountSidRE = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	// twilio-go refuses other characters in credentials, and does so on
	// every call; catch it once, up front.
	credentialRE = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
)

// NewTwilioSender checks cfg and returns a sender. It never logs or returns
// the token or secret.
func NewTwilioSender(cfg TwilioConfig) (*TwilioSender, error) {
	if !accountSidRE.MatchString(cfg.AccountSid) {
		return nil, errors.New("outbox: account SID must be AC followed by 32 hex digits")
	}
	s := &TwilioSender{accountSid: cfg.AccountSid, timeout: cfg.Timeout}
	switch {
	case (cfg.APIKey == "") != (cfg.APISecret == ""):
		return nil, errors.New("outbox: API key and API secret go together")
	case cfg.APIKey != "":
		s.username, s.password = cfg.APIKey, cfg.APISecret
	case cfg.AuthToken != "":
		s.username, s.password = cfg.AccountSid, cfg.AuthToken
	default:
		return nil, errors.New("outbox: an auth token or an API key and secret is required")
	}
	if !credentialRE.MatchString(s.username) || !credentialRE.MatchString(s.password) {
		return nil, errors.New("outbox: credentials may hold only letters and digits")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("outbox: base URL %q must be http(s)://host[:port][/path]", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	s.base = u
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Keep a connection per concurrent call instead of the default two.
	t.MaxIdleConnsPerHost = 32
	s.transport = t
	return s, nil
}

// Send posts a.Params to /v1/Workspaces/{WS}/Tasks/{WT}/Reservations/{WR}.
// It returns nil once TaskRouter answered 2xx, an *HTTPError for any other
// answer, an error wrapping ErrInvalidParams for parameters twilio-go cannot
// express, and the transport's error otherwise.
func (s *TwilioSender) Send(ctx context.Context, a Action) error {
	params, err := UpdateParams(a.Params)
	if err != nil {
		return err
	}
	// twilio-go takes no context; the transport ties each request to this
	// one, and this cancel releases what it set up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rt := &sendTransport{base: s.transport, target: s.base, ctx: ctx}
	c := &client.Client{
		Credentials: client.NewCredentials(s.username, s.password),
		HTTPClient: &http.Client{
			Transport: rt,
			Timeout:   s.timeout,
			// A redirect is a misconfigured base URL: report it, do not
			// re-post the form somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(s.accountSid)
	// A client per call, because what the transport captures (status,
	// Retry-After) belongs to this call alone. Building one is cheap next
	// to the round trip.
	api := twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}).TaskrouterV1
	_, err = api.UpdateTaskReservation(a.WorkspaceSid, a.TaskSid, a.ReservationSid, params)

	switch {
	case rt.status >= 200 && rt.status < 300:
		// Done, even if the body did not decode: the reservation has
		// been updated and sending again would be refused.
		return nil
	case rt.status == 0 && err == nil:
		return errors.New("update reservation: no response")
	case rt.status == 0:
		return fmt.Errorf("update reservation %s: %w", a.ReservationSid, err)
	}
	he := &HTTPError{StatusCode: rt.status, RetryAfter: parseRetryAfter(rt.retryAfter, time.Now())}
	var te *client.TwilioRestError
	switch {
	case errors.As(err, &te):
		he.Code, he.Message, he.MoreInfo = te.Code, te.Message, te.MoreInfo
	case err != nil:
		he.Message = err.Error()
	default:
		he.Message = http.StatusText(rt.status)
	}
	return he
}

// sendTransport sends one call's request to the configured base URL and
// captures what twilio-go's error type drops: the status and Retry-After.
type sendTransport struct {
	base   http.RoundTripper
	target *url.URL
	ctx    context.Context

	status     int
	retryAfter string
}

func (t *sendTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Cancelled by the client's timeout (through req's context) or by the
	// caller's context, whichever ends first. Send cancels t.ctx when it
	// returns, which releases this.
	ctx, cancel := context.WithCancel(req.Context())
	context.AfterFunc(t.ctx, cancel)
	r := req.Clone(ctx)
	r.URL.Scheme = t.target.Scheme
	r.URL.Host = t.target.Host
	r.URL.Path = t.target.Path + req.URL.Path
	r.URL.RawPath = ""
	r.Host = ""
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	t.retryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode >= 400 {
		// twilio-go decodes error bodies but never closes them, which
		// would leak the connection; hand it a copy and close the real one.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, nil
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

// setter applies one REST parameter's values to the twilio-go params.
type setter func(p *reservationParams, vals []string) error

type reservationParams = taskrouter.UpdateTaskReservationParams

func str(set func(*reservationParams, string) *reservationParams) setter {
	return func(p *reservationParams, vals []string) error {
		if len(vals) != 1 {
			return fmt.Errorf("want one value, got %d", len(vals))
		}
		set(p, vals[0])
		return nil
	}
}

func integer(set func(*reservationParams, int) *reservationParams) setter {
	return func(p *reservationParams, vals []string) error {
		if len(vals) != 1 {
			return fmt.Errorf("want one value, got %d", len(vals))
		}
		n, err := strconv.Atoi(vals[0])
		if err != nil {
			return fmt.Errorf("not an integer: %q", vals[0])
		}
		set(p, n)
		return nil
	}
}

func boolean(set func(*reservationParams, bool) *reservationParams) setter {
	return func(p *reservationParams, vals []string) error {
		if len(vals) != 1 {
			return fmt.Errorf("want one value, got %d", len(vals))
		}
		b, err := strconv.ParseBool(vals[0])
		if err != nil {
			return fmt.Errorf("not a boolean: %q", vals[0])
		}
		set(p, b)
		return nil
	}
}

func list(set func(*reservationParams, []string) *reservationParams) setter {
	return func(p *reservationParams, vals []string) error {
		set(p, append([]string(nil), vals...))
		return nil
	}
}

// setters maps every form parameter of UpdateTaskReservation (Twilio's
// OpenAPI, request body UpdateTaskReservationRequest) to its twilio-go
// setter, so that the form reservist decided is exactly the form sent.
// If-Match is a header, not a form parameter, and is not offered.
var setters = map[string]setter{
	"ReservationStatus": str((*reservationParams).SetReservationStatus),
	"WorkerActivitySid": str((*reservationParams).SetWorkerActivitySid),
	"Instruction":       str((*reservationParams).SetInstruction),

	"DequeuePostWorkActivitySid": str((*reservationParams).SetDequeuePostWorkActivitySid),
	"DequeueFrom":                str((*reservationParams).SetDequeueFrom),
	"DequeueRecord":              str((*reservationParams).SetDequeueRecord),
	"DequeueTimeout":             integer((*reservationParams).SetDequeueTimeout),
	"DequeueTo":                  str((*reservationParams).SetDequeueTo),
	"DequeueStatusCallbackUrl":   str((*reservationParams).SetDequeueStatusCallbackUrl),
	"DequeueStatusCallbackEvent": list((*reservationParams).SetDequeueStatusCallbackEvent),

	"CallFrom":              str((*reservationParams).SetCallFrom),
	"CallRecord":            str((*reservationParams).SetCallRecord),
	"CallTimeout":           integer((*reservationParams).SetCallTimeout),
	"CallTo":                str((*reservationParams).SetCallTo),
	"CallUrl":               str((*reservationParams).SetCallUrl),
	"CallStatusCallbackUrl": str((*reservationParams).SetCallStatusCallbackUrl),
	"CallAccept":            boolean((*reservationParams).SetCallAccept),

	"RedirectCallSid": str((*reservationParams).SetRedirectCallSid),
	"RedirectAccept":  boolean((*reservationParams).SetRedirectAccept),
	"RedirectUrl":     str((*reservationParams).SetRedirectUrl),

	"To":                                str((*reservationParams).SetTo),
	"From":                              str((*reservationParams).SetFrom),
	"PostWorkActivitySid":               str((*reservationParams).SetPostWorkActivitySid),
	"Timeout":                           integer((*reservationParams).SetTimeout),
	"StatusCallback":                    str((*reservationParams).SetStatusCallback),
	"StatusCallbackMethod":              str((*reservationParams).SetStatusCallbackMethod),
	"StatusCallbackEvent":               list((*reservationParams).SetStatusCallbackEvent),
	"Record":                            boolean((*reservationParams).SetRecord),
	"Muted":                             boolean((*reservationParams).SetMuted),
	"Beep":                              str((*reservationParams).SetBeep),
	"StartConferenceOnEnter":            boolean((*reservationParams).SetStartConferenceOnEnter),
	"EndConferenceOnExit":               boolean((*reservationParams).SetEndConferenceOnExit),
	"EndConferenceOnCustomerExit":       boolean((*reservationParams).SetEndConferenceOnCustomerExit),
	"BeepOnCustomerEntrance":            boolean((*reservationParams).SetBeepOnCustomerEntrance),
	"WaitUrl":                           str((*reservationParams).SetWaitUrl),
	"WaitMethod":                        str((*reservationParams).SetWaitMethod),
	"EarlyMedia":                        boolean((*reservationParams).SetEarlyMedia),
	"MaxParticipants":                   integer((*reservationParams).SetMaxParticipants),
	"ConferenceStatusCallback":          str((*reservationParams).SetConferenceStatusCallback),
	"ConferenceStatusCallbackMethod":    str((*reservationParams).SetConferenceStatusCallbackMethod),
	"ConferenceStatusCallbackEvent":     list((*reservationParams).SetConferenceStatusCallbackEvent),
	"ConferenceRecord":                  str((*reservationParams).SetConferenceRecord),
	"ConferenceTrim":                    str((*reservationParams).SetConferenceTrim),
	"RecordingChannels":                 str((*reservationParams).SetRecordingChannels),
	"RecordingStatusCallback":           str((*reservationParams).SetRecordingStatusCallback),
	"RecordingStatusCallbackMethod":     str((*reservationParams).SetRecordingStatusCallbackMethod),
	"ConferenceRecordingStatusCallback": str((*reservationParams).SetConferenceRecordingStatusCallback),
	"ConferenceRecordingStatusCallbackMethod": str((*reservationParams).SetConferenceRecordingStatusCallbackMethod),
	"Region":           str((*reservationParams).SetRegion),
	"SipAuthUsername":  str((*reservationParams).SetSipAuthUsername),
	"SipAuthPassword":  str((*reservationParams).SetSipAuthPassword),
	"JitterBufferSize": str((*reservationParams).SetJitterBufferSize),

	"Supervisor":     str((*reservationParams).SetSupervisor),
	"SupervisorMode": str((*reservationParams).SetSupervisorMode),
}

// UpdateParams converts REST form parameters to twilio-go's
// UpdateTaskReservationParams. Unknown names, repeated scalars and values
// of the wrong type are errors wrapping ErrInvalidParams.
func UpdateParams(form url.Values) (*taskrouter.UpdateTaskReservationParams, error) {
	p := &taskrouter.UpdateTaskReservationParams{}
	for name, vals := range form {
		set, ok := setters[name]
		if !ok {
			return nil, fmt.Errorf("%w: unknown parameter %q", ErrInvalidParams, name)
		}
		if err := set(p, vals); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidParams, name, err)
		}
	}
	return p, nil
}
