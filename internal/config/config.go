// Package config is the serve command's configuration: its flags, the RESERVIST_*
// variables that stand in for them, their defaults, and Twilio's credentials, read and
// checked as a whole.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/postgres"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/internal/cli"
)

// OutboxBbolt is --outbox's default: the embedded outbox, a file in --state-dir.
const OutboxBbolt = "bbolt"

// Serve is the serve command's configuration: flags over RESERVIST_* variables over
// defaults, and Twilio's own credential variables.
type Serve struct {
	Rules                 string
	Listen                string
	CallbackPaths         []string
	EventsPath            string // "" when --events-path off
	AdminListen           string // "" when --admin-listen off
	PublicURL             *url.URL
	StateDir              string
	Outbox                string // OutboxBbolt, or the shared outbox's postgres:// URL
	ReservationTimeout    time.Duration
	ResponseBudget        time.Duration
	RESTConcurrency       int
	TwilioBaseURL         string
	ReloadPoll            time.Duration
	ReloadCases           []string
	InsecureSkipSignature bool
	LogFormat             string
	LogLevel              slog.Level
	MetricsListen         string        // "" when --metrics-listen is off
	ShutdownDelay         time.Duration // readiness 503 before the drain, callbacks still answered
	CaptureDir            string        // "" when capture is off
	CaptureRedact         []string      // attribute keys, one per entry
	CaptureMax            int

	Credentials taskrouter.Credentials

	// Warnings are logged once the logger exists: they do not stop the start.
	Warnings []string
}

// DefaultEventsPath is --events-path's default.
const DefaultEventsPath = "/taskrouter/events"

// DefaultReservationTimeout is the default of the Workflow's TaskReservationTimeout, and so
// of --reservation-timeout wherever a command takes it (serve, check).
const DefaultReservationTimeout = 120 * time.Second

// CheckReservationTimeout refuses a --reservation-timeout that no Workflow can have.
func CheckReservationTimeout(d time.Duration) error {
	// TaskRouter's TaskReservationTimeout is at most 86,400 s.
	if d <= 0 || d > 24*time.Hour {
		return fmt.Errorf("--reservation-timeout %v: must be more than 0 and at most 24h, like the Workflow's TaskReservationTimeout", d)
	}
	return nil
}

// ParseServe reads serve's flags, then fills every flag not given from its RESERVIST_*
// variable, then checks the whole (see DeclareServe). Errors are usage errors (exit 2) and
// name the flag or variable at fault; -h is flag.ErrHelp.
func ParseServe(args []string, getenv func(string) string) (*Serve, error) {
	fs := cli.NewFlags("serve")
	finish := DeclareServe(fs)
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, cli.Usagef("unexpected argument %q: serve takes flags only", pos[0])
	}
	return finish(getenv)
}

// ServeDoc is what `reservist help serve` says before the flags.
const ServeDoc = `Runs the callback server: it answers TaskRouter's assignment callbacks from the rules file, reloads the file when it changes, and carries out the decisions that go by REST.

Every flag has an environment variable, named beside it; flags win over the environment, and a repeatable flag's variable is a comma-separated list.

Twilio's credentials come from Twilio's own variables. TWILIO_AUTH_TOKEN alone checks callback signatures, and REST decisions are logged as a dry run and dropped; TWILIO_ACCOUNT_SID with it (or with TWILIO_API_KEY and TWILIO_API_SECRET) sends them.`

// DeclareServe declares serve's flags on fs and returns what, once fs has parsed the
// command line, fills every flag not given from its RESERVIST_* variable (a repeatable
// flag's holds a comma-separated list), reads Twilio's credentials and checks the whole.
// Its errors are usage errors (exit 2) and name the flag or variable at fault.
func DeclareServe(fs *flag.FlagSet) func(getenv func(string) string) (*Serve, error) {
	c := &Serve{}
	var (
		paths       = &cli.List{Values: []string{"/assignment_callback"}}
		caseDirs    = &cli.List{}
		redact      = &cli.List{}
		publicURL   string
		adminListen string
		eventsPath  string
	)
	fs.StringVar(&c.Rules, "rules", "rules.yaml", "the rules `file`")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "callback listener `address`")
	fs.Var(paths, "callback-path", "`path` TaskRouter calls; repeatable")
	fs.StringVar(&eventsPath, "events-path", DefaultEventsPath, "`path` on the callback listener for TaskRouter's Event callbacks (the Workspace's EventCallbackUrl); off disables it")
	fs.StringVar(&adminListen, "admin-listen", "127.0.0.1:9090", "admin listener `address` (metrics, reload, rules status, playground); off disables it")
	fs.StringVar(&publicURL, "public-url", "", "scheme://host[:port] `URL` TaskRouter uses to reach reservist, for signature checks behind proxies (default: the request's own)")
	fs.StringVar(&c.StateDir, "state-dir", ".reservist", "`directory` where the REST outbox keeps pending actions (created if missing)")
	fs.StringVar(&c.Outbox, "outbox", OutboxBbolt, "where pending REST actions are kept: bbolt (a file in --state-dir) or a PostgreSQL `URL` postgres://… that every replica naming it shares; libpq's PG* variables (PGPASSWORD, PGSSLMODE, …) fill in what the URL leaves out")
	fs.DurationVar(&c.ReservationTimeout, "reservation-timeout", DefaultReservationTimeout, "the reservation timeout until a Workflow's own TaskReservationTimeout is known (always without REST credentials): REST actions are abandoned after it")
	fs.DurationVar(&c.ResponseBudget, "response-budget", 3*time.Second, "longest a callback may take before reservist answers {} and finishes by REST")
	fs.IntVar(&c.RESTConcurrency, "rest-concurrency", outbox.DefaultConcurrency, "REST calls in flight at once")
	fs.StringVar(&c.TwilioBaseURL, "twilio-base-url", taskrouter.DefaultBaseURL, "`URL` where REST calls go (tests, egress proxies)")
	fs.DurationVar(&c.ReloadPoll, "reload-poll", 30*time.Second, "checksum poll of the rules file, besides file-system events; 0 disables")
	fs.Var(caseDirs, "reload-cases", "golden-case `directory` a new rules file must pass before it replaces the serving one; repeatable")
	fs.BoolVar(&c.InsecureSkipSignature, "insecure-skip-signature", false, "accept unsigned callbacks on a non-loopback listener (never in production)")
	logFormat := cli.NewChoice(fs, "log-format", "json", []string{"json", "text"}, "log format")
	logLevel := cli.NewChoice(fs, "log-level", "info", logLevelNames, "least severe level logged; the decision log (a line per callback) is at info, so warn and error leave it out")
	var metricsListen string
	fs.StringVar(&metricsListen, "metrics-listen", "off", "an extra listener `address` serving only GET /metrics, so that --admin-listen can stay on loopback while Prometheus scrapes; metrics are unauthenticated but hold no secrets or attributes, so any address will do; off disables it")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep answering callbacks this long with /readyz at 503 before the drain starts, so that load balancers stop sending first; a second SIGTERM or SIGINT cuts it short")
	fs.StringVar(&c.CaptureDir, "capture-dir", "", "write each authentic callback to this `directory` as a .form golden case (off by default)")
	fs.Var(redact, "capture-redact", "attribute `keys` whose values capture replaces, in TaskAttributes and WorkerAttributes at any depth; comma-separated, repeatable")
	fs.IntVar(&c.CaptureMax, "capture-max", cases.DefaultCaptureMax, "capture stops writing while --capture-dir holds this many .form files")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env " + cli.EnvName(f.Name) + ")" })

	return func(getenv func(string) string) (*Serve, error) {
		if err := cli.FromEnv(fs, getenv); err != nil {
			return nil, cli.Exit(cli.Usage, err)
		}
		var errs []error

		c.CallbackPaths, c.ReloadCases = paths.Values, caseDirs.Values
		c.LogFormat = logFormat.Value
		c.LogLevel = logLevels[logLevel.Value]
		if metricsListen != "off" {
			c.MetricsListen = metricsListen
		}
		for _, v := range redact.Values {
			c.CaptureRedact = append(c.CaptureRedact, cli.SplitList(v)...)
		}
		if adminListen != "off" {
			c.AdminListen = adminListen
		}
		if eventsPath != "off" {
			c.EventsPath = eventsPath
		}
		if publicURL != "" {
			u, err := ParsePublicURL(publicURL)
			if err != nil {
				errs = append(errs, err)
			}
			c.PublicURL = u
		}
		creds, err := taskrouter.FromEnv(getenv)
		if err != nil {
			errs = append(errs, err)
		}
		c.Credentials = creds
		errs = append(errs, c.check()...)
		if len(errs) > 0 {
			return nil, cli.Exit(cli.Usage, errors.Join(errs...))
		}
		return c, nil
	}
}

// check validates values that each parsed but may not make sense.
func (c *Serve) check() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	loopback, err := IsLoopback(c.Listen)
	if err != nil {
		bad("--listen %q: %v", c.Listen, err)
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			bad("--admin-listen %q: %v (or off)", c.AdminListen, err)
		}
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			bad("--metrics-listen %q: %v (or off)", c.MetricsListen, err)
		}
	}
	if c.ShutdownDelay < 0 {
		bad("--shutdown-delay %v: must be 0 (off) or more", c.ShutdownDelay)
	}
	seen := map[string]bool{}
	paths := c.CallbackPaths[:0:0]
	for _, p := range c.CallbackPaths {
		if err := checkCallbackPath(p); err != nil {
			bad("--callback-path %q: %v", p, err)
		}
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	c.CallbackPaths = paths
	if len(paths) == 0 {
		bad("--callback-path: at least one path is needed")
	}
	if c.EventsPath != "" {
		switch err := checkCallbackPath(c.EventsPath); {
		case err != nil:
			bad("--events-path %q: %v (or off)", c.EventsPath, err)
		case seen[c.EventsPath]:
			bad("--events-path %q is also a --callback-path: Event callbacks need a path of their own", c.EventsPath)
		}
	}
	if c.StateDir == "" {
		bad("--state-dir must not be empty")
	}
	switch {
	case c.Outbox == OutboxBbolt:
	case postgres.IsURL(c.Outbox):
		if _, err := postgres.ParseURL(c.Outbox); err != nil {
			bad("--outbox: %v", err) // pgx's message masks the password
		}
	default:
		bad("--outbox %q: must be bbolt or a PostgreSQL URL postgres://USER@HOST:PORT/DATABASE", postgres.Redacted(c.Outbox))
	}
	if err := CheckReservationTimeout(c.ReservationTimeout); err != nil {
		errs = append(errs, err)
	}
	if c.ResponseBudget <= 0 {
		bad("--response-budget %v: must be more than 0", c.ResponseBudget)
	} else if c.ResponseBudget >= 5*time.Second {
		c.Warnings = append(c.Warnings, fmt.Sprintf("--response-budget %v is not under TaskRouter's 5s callback deadline: late decisions will reach TaskRouter as timeouts, not as {}", c.ResponseBudget))
	}
	if c.RESTConcurrency < 1 {
		bad("--rest-concurrency %d: must be at least 1", c.RESTConcurrency)
	}
	if u, err := url.Parse(c.TwilioBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("--twilio-base-url %q: must be an absolute http(s) URL", c.TwilioBaseURL)
	}
	if c.ReloadPoll < 0 {
		bad("--reload-poll %v: must be 0 (off) or more", c.ReloadPoll)
	}
	if c.CaptureMax < 1 {
		bad("--capture-max %d: must be at least 1", c.CaptureMax)
	}

	if c.Credentials.AuthToken == "" && err == nil && !loopback && !c.InsecureSkipSignature {
		bad("TWILIO_AUTH_TOKEN is not set, so callbacks cannot be checked for Twilio's signature, and --listen %s is not a loopback address: set TWILIO_AUTH_TOKEN (or listen on 127.0.0.1, or pass --insecure-skip-signature, never in production)", c.Listen)
	}
	return errs
}

// logLevelNames are --log-level's words, most verbose first.
var logLevelNames = []string{"debug", "info", "warn", "error"}

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// LogFormat is the --log-format that fs (parsed) and the environment give, even when the rest
// of the configuration is wrong, so that serve can report that in the format asked for; ok
// is false when the format itself is wrong.
func LogFormat(fs *flag.FlagSet, getenv func(string) string) (format string, ok bool) {
	f := fs.Lookup("log-format")
	if f == nil {
		return "", false
	}
	c, isChoice := f.Value.(*cli.Choice)
	if !isChoice {
		return "", false
	}
	if cli.Given(fs, f.Name) {
		return c.Value, true
	}
	v := getenv(cli.EnvName(f.Name))
	switch {
	case v == "":
		return f.DefValue, true
	case slices.Contains(c.Allowed, v):
		return v, true
	}
	return "", false
}

// isLoopback reports whether a listen address is on a loopback interface only. An empty
// host listens on every interface.
func IsLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// reservedPaths are the callback listener's own routes.
var reservedPaths = []string{"/", "/healthz", "/readyz"}

// checkCallbackPath accepts an absolute path that the router takes literally.
func checkCallbackPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return errors.New("must start with /")
	case strings.ContainsAny(p, "?#{}* \t\r\n"):
		return errors.New("must be a plain path, without a query, fragment, spaces or {}*")
	case slices.Contains(reservedPaths, p):
		return errors.New("is one of reservist's own routes")
	}
	return nil
}

// parsePublicURL accepts scheme://host[:port]: the part of the callback URL before the path.
func ParsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--public-url %q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("--public-url %q: the scheme must be http or https", s)
	case u.Host == "":
		return nil, fmt.Errorf("--public-url %q: a host is needed, as in https://reservist.example.com", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("--public-url %q: give only scheme://host[:port]; the callback path is added to it", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}
