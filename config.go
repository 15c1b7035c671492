package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// serveConfig is the serve command's configuration: flags over RESERVIST_* variables over
// defaults (SPEC §1), and Twilio's own credential variables.
type serveConfig struct {
	rules                 string
	listen                string
	callbackPaths         []string
	adminListen           string // "" when --admin-listen off
	publicURL             *url.URL
	stateDir              string
	reservationTimeout    time.Duration
	responseBudget        time.Duration
	restConcurrency       int
	twilioBaseURL         string
	reloadPoll            time.Duration
	reloadCases           []string
	insecureSkipSignature bool
	logFormat             string
	captureDir            string   // "" when capture is off
	captureRedact         []string // attribute keys, one per entry
	captureMax            int

	accountSid, authToken, apiKey, apiSecret string

	// warnings are logged once the logger exists: they do not stop the start.
	warnings []string
}

// listFlag is a repeatable flag. Its default is replaced, not added to, by the first value
// given.
type listFlag struct {
	values []string
	set    bool
}

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.values, l.set = nil, true
	}
	l.values = append(l.values, v)
	return nil
}

// envName is the variable that stands in for a flag: RESERVIST_ + NAME with - as _.
func envName(flagName string) string {
	return "RESERVIST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseServeConfig reads serve's flags, then fills every flag not given from its
// RESERVIST_* variable (a repeatable flag's holds a comma-separated list), then checks the
// whole. Errors are usage errors (exit 2) and name the flag or variable at fault.
func parseServeConfig(args []string, getenv func(string) string, stderr io.Writer) (*serveConfig, error) {
	c := &serveConfig{}
	var (
		paths       = &listFlag{values: []string{"/assignment_callback"}}
		cases       = &listFlag{}
		redact      = &listFlag{}
		publicURL   string
		adminListen string
	)
	fs := flag.NewFlagSet("reservist serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.rules, "rules", "rules.yaml", "the rules `file`")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "callback listener `address`")
	fs.Var(paths, "callback-path", "`path` TaskRouter calls; repeatable")
	fs.StringVar(&adminListen, "admin-listen", "127.0.0.1:9090", "admin listener `address` (metrics, reload, rules status); off disables it")
	fs.StringVar(&publicURL, "public-url", "", "scheme://host[:port] `URL` TaskRouter uses to reach reservist, for signature checks behind proxies (default: the request's own)")
	fs.StringVar(&c.stateDir, "state-dir", ".reservist", "`directory` where the REST outbox keeps pending actions (created if missing)")
	fs.DurationVar(&c.reservationTimeout, "reservation-timeout", 120*time.Second, "the Workflow's TaskReservationTimeout: REST actions are abandoned after it")
	fs.DurationVar(&c.responseBudget, "response-budget", 3*time.Second, "longest a callback may take before reservist answers {} and finishes by REST")
	fs.IntVar(&c.restConcurrency, "rest-concurrency", 8, "REST calls in flight at once")
	fs.StringVar(&c.twilioBaseURL, "twilio-base-url", "https://taskrouter.twilio.com", "`URL` where REST calls go (tests, egress proxies)")
	fs.DurationVar(&c.reloadPoll, "reload-poll", 30*time.Second, "checksum poll of the rules file, besides file-system events; 0 disables")
	fs.Var(cases, "reload-cases", "golden-case `directory` a new rules file must pass before it replaces the serving one; repeatable")
	fs.BoolVar(&c.insecureSkipSignature, "insecure-skip-signature", false, "accept unsigned callbacks on a non-loopback listener (never in production)")
	fs.StringVar(&c.logFormat, "log-format", "json", "log `format`: json or text")
	fs.StringVar(&c.captureDir, "capture-dir", "", "write each authentic callback to this `directory` as a .form golden case (off by default)")
	fs.Var(redact, "capture-redact", "attribute `keys` whose values capture replaces, in TaskAttributes and WorkerAttributes at any depth; comma-separated, repeatable")
	fs.IntVar(&c.captureMax, "capture-max", 1000, "capture stops writing while --capture-dir holds this many .form files")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env " + envName(f.Name) + ")" })
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: reservist serve [flags]

Runs the callback server. Flags win over their RESERVIST_* variables; a repeatable flag's
variable is a comma-separated list. Twilio credentials come from TWILIO_ACCOUNT_SID with
TWILIO_AUTH_TOKEN (which also checks callback signatures) and optionally TWILIO_API_KEY +
TWILIO_API_SECRET for REST calls.

`)
		fs.PrintDefaults()
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exit(exitOK, nil)
		}
		return nil, exit(exitUsage, nil) // the flag package has said what is wrong
	}
	if fs.NArg() > 0 {
		return nil, exit(exitUsage, fmt.Errorf("serve takes no arguments, got %q", fs.Args()))
	}

	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if given[f.Name] || v == "" {
			return
		}
		vals := []string{v}
		if _, ok := f.Value.(*listFlag); ok {
			vals = splitList(v)
		}
		for _, v := range vals {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return nil, exit(exitUsage, errors.Join(errs...))
	}

	c.callbackPaths, c.reloadCases = paths.values, cases.values
	for _, v := range redact.values {
		c.captureRedact = append(c.captureRedact, splitList(v)...)
	}
	if adminListen != "off" {
		c.adminListen = adminListen
	}
	if publicURL != "" {
		u, err := parsePublicURL(publicURL)
		if err != nil {
			errs = append(errs, err)
		}
		c.publicURL = u
	}
	c.accountSid, c.authToken = getenv("TWILIO_ACCOUNT_SID"), getenv("TWILIO_AUTH_TOKEN")
	c.apiKey, c.apiSecret = getenv("TWILIO_API_KEY"), getenv("TWILIO_API_SECRET")
	errs = append(errs, c.check()...)
	if len(errs) > 0 {
		return nil, exit(exitUsage, errors.Join(errs...))
	}
	return c, nil
}

// check validates values that each parsed but may not make sense, and the credentials.
func (c *serveConfig) check() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	loopback, err := isLoopback(c.listen)
	if err != nil {
		bad("--listen %q: %v", c.listen, err)
	}
	if c.adminListen != "" {
		if _, _, err := net.SplitHostPort(c.adminListen); err != nil {
			bad("--admin-listen %q: %v (or off)", c.adminListen, err)
		}
	}
	seen := map[string]bool{}
	paths := c.callbackPaths[:0:0]
	for _, p := range c.callbackPaths {
		if err := checkCallbackPath(p); err != nil {
			bad("--callback-path %q: %v", p, err)
		}
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	c.callbackPaths = paths
	if len(paths) == 0 {
		bad("--callback-path: at least one path is needed")
	}
	if c.stateDir == "" {
		bad("--state-dir must not be empty")
	}
	// TaskRouter's TaskReservationTimeout is at most 86,400 s.
	if c.reservationTimeout <= 0 || c.reservationTimeout > 24*time.Hour {
		bad("--reservation-timeout %v: must be more than 0 and at most 24h, like the Workflow's TaskReservationTimeout", c.reservationTimeout)
	}
	if c.responseBudget <= 0 {
		bad("--response-budget %v: must be more than 0", c.responseBudget)
	} else if c.responseBudget >= 5*time.Second {
		c.warnings = append(c.warnings, fmt.Sprintf("--response-budget %v is not under TaskRouter's 5s callback deadline: late decisions will reach TaskRouter as timeouts, not as {}", c.responseBudget))
	}
	if c.restConcurrency < 1 {
		bad("--rest-concurrency %d: must be at least 1", c.restConcurrency)
	}
	if u, err := url.Parse(c.twilioBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("--twilio-base-url %q: must be an absolute http(s) URL", c.twilioBaseURL)
	}
	if c.reloadPoll < 0 {
		bad("--reload-poll %v: must be 0 (off) or more", c.reloadPoll)
	}
	if c.logFormat != "json" && c.logFormat != "text" {
		bad("--log-format %q: must be json or text", c.logFormat)
	}
	if c.captureMax < 1 {
		bad("--capture-max %d: must be at least 1", c.captureMax)
	}

	// Half a set of credentials is a mistake worth stopping for: REST calls would fail
	// later, one reservation at a time.
	switch {
	case c.apiKey != "" && c.apiSecret == "":
		bad("TWILIO_API_KEY is set but TWILIO_API_SECRET is not")
	case c.apiSecret != "" && c.apiKey == "":
		bad("TWILIO_API_SECRET is set but TWILIO_API_KEY is not")
	case c.accountSid == "" && (c.authToken != "" || c.apiKey != ""):
		bad("TWILIO_ACCOUNT_SID is not set, but TWILIO_AUTH_TOKEN or TWILIO_API_KEY is: set it too")
	case c.accountSid != "" && c.authToken == "" && c.apiKey == "":
		bad("TWILIO_ACCOUNT_SID is set without TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET)")
	}
	if c.authToken == "" && err == nil && !loopback && !c.insecureSkipSignature {
		bad("TWILIO_AUTH_TOKEN is not set, so callbacks cannot be checked for Twilio's signature, and --listen %s is not a loopback address: set TWILIO_AUTH_TOKEN (or listen on 127.0.0.1, or pass --insecure-skip-signature, never in production)", c.listen)
	}
	return errs
}

// signed reports whether callbacks must carry a valid X-Twilio-Signature.
func (c *serveConfig) signed() bool { return c.authToken != "" && !c.insecureSkipSignature }

// haveREST reports whether there are credentials for REST calls.
func (c *serveConfig) haveREST() bool {
	return c.accountSid != "" && (c.authToken != "" || c.apiKey != "")
}

// splitList reads a repeatable flag's variable: comma-separated, blanks ignored.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// isLoopback reports whether a listen address is on a loopback interface only. An empty
// host listens on every interface.
func isLoopback(addr string) (bool, error) {
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
func parsePublicURL(s string) (*url.URL, error) {
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
