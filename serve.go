package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outbox/boltdb"
	"github.com/reservist/reservist/engine/outbox/postgres"
	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/engine/taskrouter"
	"github.com/reservist/reservist/internal/cli"
	"github.com/reservist/reservist/internal/config"
	"github.com/reservist/reservist/internal/gcheadroom"
	"github.com/reservist/reservist/internal/logbuf"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/server"
	"github.com/reservist/reservist/server/playground"
)

// Server timeouts. TaskRouter gives up on a callback after 5 seconds, so nothing longer is
// useful; they exist so that a stalled client cannot hold a connection and a goroutine.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	maxHeaderBytes    = 64 << 10
	// callbackIdleTimeout keeps a connection TaskRouter (or a load balancer in front)
	// reuses between callbacks open longer than the 60s idle timeout load balancers
	// commonly have, so that they close first and no request races a close; an idle flood
	// is the connection limit's to handle.
	callbackIdleTimeout = 75 * time.Second
	adminIdleTimeout    = 30 * time.Second
	// The connection limits of the listeners (README): at the limit the oldest idle
	// connection makes room, so that a flood of idle keep-alive connections can neither
	// exhaust file descriptors nor shut TaskRouter out. An open connection costs some
	// 20 KB; the admin listener's callers are a few operators and Prometheus.
	callbackMaxConns = 1024
	adminMaxConns    = 64
	// writeSlack is WriteTimeout beyond the read timeout and the response budget: time to
	// store a decision and write the answer.
	writeSlack = 5 * time.Second
	// gcHeadroom is how much the garbage collector lets reservist allocate between two
	// collections at least (GOGC in the environment turns it off); see internal/gcheadroom.
	gcHeadroom = 8 << 20
)

// wallClock is the clock the program decides by when a callback does not say its time: serve
// decides a callback without a usable Timestamp at its arrival by it, and so does the
// playground. The cases (`reservist test`, explain, --reload-cases, a draft's cases) are
// decided at their own Timestamps and never read it; a test moves it to prove that.
var wallClock = time.Now

// hooks let a test watch and drive a serve that runs in its process.
type hooks struct {
	// ready, when set, is called once every listener listens, with their addresses.
	ready func(listening)
	// hup, when set, stands in for SIGHUP.
	hup <-chan os.Signal
	// settle, when set, replaces the rules' settle time (reload.Options.Settle): tests
	// that write whole files at once need not wait for it at every start.
	settle time.Duration
}

// listening are the addresses serve listens on; admin and metrics are "" when off.
type listening struct{ callback, admin, metrics string }

// serveCommand is `reservist serve`: the callback server, which runs until ctx is
// cancelled (SIGTERM, SIGINT). h lets a test watch and drive it.
func serveCommand(getenv func(string) string, stderr io.Writer, h hooks) *cli.Command {
	return &cli.Command{
		Name:     "serve",
		Synopsis: "[flags]",
		Summary:  "run the callback server (the default when no command is given)",
		Doc:      config.ServeDoc,
		Setup: func(fs *flag.FlagSet) cli.Runner {
			finish := config.DeclareServe(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return cli.Usagef("unexpected argument %q: serve takes flags only", args[0])
				}
				cfg, err := finish(getenv)
				if err != nil {
					// The command line parsed, so the format is known unless it is what is
					// wrong: the variables and the checks are reported as log lines.
					if format, ok := config.LogFormat(fs, getenv); ok {
						return cannotStart(slog.New(logHandler(format, slog.LevelInfo, stderr)), err)
					}
					return err
				}
				return runServe(ctx, cfg, stderr, h)
			}
		},
	}
}

// serve runs `reservist serve` with args as run does, its help going to stderr: tests start
// it this way, in their process.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, h hooks) error {
	return serveCommand(getenv, stderr, h).Run(ctx, args, stderr)
}

// runServe runs the callback server until ctx is cancelled: it starts its components in
// order and, when it stops, closes them in reverse order: the listeners drain the callbacks
// in flight, then the outbox keeps what is pending, then the log is flushed.
func runServe(ctx context.Context, cfg *config.Serve, stderr io.Writer, h hooks) error {
	defer gcheadroom.Start(gcHeadroom)()

	// The decision log is batched; everything else goes out at once, in order with it.
	sink := logbuf.New(stderr, 64<<10)
	// What others' code logs (River, net/http) may hold durations, which it writes as
	// nanoseconds; the decision log is reservist's own and needs no such pass.
	logger := slog.New(logbuf.Seconds(logHandler(cfg.LogFormat, cfg.LogLevel, sink.Direct())))
	decisions := slog.New(logHandler(cfg.LogFormat, cfg.LogLevel, sink))
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	reg := prometheus.NewRegistry()
	b := readBuild()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		server.NewBuildInfo(b.version, b.revision, b.goVersion))

	conns := server.NewConnMetrics()
	if err := conns.Register(reg); err != nil {
		return err
	}
	var (
		g         group
		rl        *reload.Reloader
		ob        outbox.Outbox
		tracker   *outcomes.Tracker // nil with --events-path off: no outcomes to count
		timeouts  *taskrouter.Timeouts
		bench     workbench
		callbacks = httpServer(cfg.ResponseBudget, callbackIdleTimeout, server.NewConns("callback", callbackMaxConns, conns), logger)
		admin     = httpServer(0, adminIdleTimeout, server.NewConns("admin", adminMaxConns, conns), logger)
		scrape    = httpServer(0, adminIdleTimeout, server.NewConns("metrics", adminMaxConns, conns), logger)
		srv       *server.Server
		addrs     listening
	)
	watching := make(chan struct{})
	watched := sync.OnceFunc(func() { close(watching) })
	token := cfg.Credentials.AuthToken
	if cfg.InsecureSkipSignature {
		token = ""
	}
	err := g.start(
		component{
			name: "log",
			// At most a second of decision lines is lost to SIGKILL.
			run: func(ctx context.Context) error { sink.Run(ctx, time.Second); return nil },
		},
		component{
			name: "rules",
			open: func() (err error) {
				rl, err = reload.New(cfg.Rules, reload.Options{Logger: logger, Gate: casesGate(cfg.ReloadCases), Settle: h.settle})
				if err != nil {
					return cli.Exit(cli.Failed, err)
				}
				return rl.Register(reg)
			},
		},
		component{
			name: "outbox",
			open: func() (err error) {
				ob, err = openOutbox(cfg, logger, reg)
				return err
			},
			run: func(ctx context.Context) error {
				if err := ob.Run(ctx); err != nil && !errors.Is(err, outbox.ErrClosed) {
					logger.Error("outbox stopped", "error", err)
				}
				return nil
			},
			close: func() error { return ob.Close() },
		},
		component{
			name: "outcomes",
			open: func() error {
				if cfg.EventsPath == "" {
					return nil
				}
				// With the shared outbox the decisions are kept in its database, so that
				// whichever replica an event reaches counts it.
				var store outcomes.Store
				if pg, ok := ob.(*postgres.Outbox); ok {
					store = pg.Decisions()
				}
				tracker = outcomes.New(outcomes.Options{
					Window: cfg.ReservationTimeout + outcomes.WindowSlack,
					Store:  store,
					Rules:  rl,
					Logger: logger,
				})
				return tracker.Register(reg)
			},
			// Stopped after the listeners have drained: the decisions still queued for the
			// database are written, while the outbox's connections are still open.
			run: func(ctx context.Context) error {
				if tracker == nil {
					return nil
				}
				return tracker.Run(ctx)
			},
		},
		component{
			// Before the callbacks, which ask it for each Workflow's timeout; its fetches
			// end when they have drained.
			name: "workflow timeouts",
			// Without REST credentials it fetches nothing: --reservation-timeout for all.
			open: func() (err error) {
				timeouts, err = taskrouter.NewTimeouts(taskrouter.TimeoutsConfig{Credentials: cfg.Credentials,
					BaseURL: cfg.TwilioBaseURL, Fallback: cfg.ReservationTimeout, Logger: logger})
				if err != nil {
					return cli.Exit(cli.Usage, err)
				}
				return timeouts.Register(reg)
			},
			run: func(ctx context.Context) error { return timeouts.Run(ctx) },
		},
		component{
			name: "rules watcher",
			run: func(ctx context.Context) error {
				err := rl.Watch(ctx, reload.WatchOptions{Poll: cfg.ReloadPoll, Ready: watched})
				if err != nil {
					logger.Error("rules are not watched for changes; reload with SIGHUP or POST /-/reload", "error", err)
				}
				return nil
			},
			// Serve says "listening" only once no change to the rules can go unseen.
			ready: watching,
		},
		component{
			name: "SIGHUP",
			run: func(ctx context.Context) error {
				hup := h.hup
				if hup == nil {
					c := make(chan os.Signal, 1)
					signal.Notify(c, syscall.SIGHUP)
					defer signal.Stop(c)
					hup = c
				}
				// A reload runs apart from this loop, so that shutdown never waits on one;
				// one more may start while it runs (it reads the file after the signal),
				// and signals beyond that are covered by it.
				slots := make(chan struct{}, 2)
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-hup:
						select {
						case slots <- struct{}{}:
							go func() {
								defer func() { <-slots }()
								rl.Reload("SIGHUP") // logs its own outcome
							}()
						default:
						}
					}
				}
			},
		},
		component{
			name: "workbench",
			open: func() (err error) {
				bench, err = newWorkbench(cfg, reg, logger)
				return err
			},
			// After the listeners have drained: capture writes what is still queued.
			close: func() error { bench.close(); return nil },
		},
		component{
			name: "callback listener",
			open: func() error {
				metrics := server.NewMetrics()
				if err := metrics.Register(reg); err != nil {
					return err
				}
				srv = server.New(server.Options{
					Rules:         rl,
					Outbox:        ob,
					CallbackPaths: cfg.CallbackPaths,
					EventsPath:    cfg.EventsPath,
					Supersede: func(ctx context.Context, reservationSid, taskSid, event string) (int, error) {
						return ob.Supersede(ctx, outbox.Supersession{ReservationSid: reservationSid, TaskSid: taskSid, Event: event})
					},
					Outcomes:           tracker,
					AuthToken:          token,
					PublicURL:          cfg.PublicURL,
					ResponseBudget:     cfg.ResponseBudget,
					ReservationTimeout: cfg.ReservationTimeout,
					Timeouts:           timeouts,
					Logger:             logger,
					DecisionLog:        decisions,
					Metrics:            metrics,
					Gatherer:           reg,
					Playground:         bench.playground(rl, cfg, logger, tracker),
					Observe:            bench.observe(),
					Now:                wallClock,
				})
				callbacks.Handler, admin.Handler, scrape.Handler = srv.Callbacks(), srv.Admin(), srv.Metrics()
				ln, err := net.Listen("tcp", cfg.Listen)
				if err != nil {
					return cli.Exit(cli.Runtime, fmt.Errorf("cannot listen for callbacks: %w", err))
				}
				addrs.callback = ln.Addr().String()
				callbacks.listener = callbacks.conns.Listener(ln)
				return nil
			},
			run:   callbacks.serve,
			close: callbacks.drain,
		},
		component{
			name: "admin listener",
			open: func() error {
				if cfg.AdminListen == "" {
					return nil
				}
				ln, err := net.Listen("tcp", cfg.AdminListen)
				if err != nil {
					return cli.Exit(cli.Runtime, fmt.Errorf("cannot listen for admin: %w", err))
				}
				addrs.admin = ln.Addr().String()
				admin.listener = admin.conns.Listener(ln)
				return nil
			},
			run:   admin.serve,
			close: admin.drain,
		},
		component{
			name: "metrics listener",
			open: func() error {
				if cfg.MetricsListen == "" {
					return nil
				}
				ln, err := net.Listen("tcp", cfg.MetricsListen)
				if err != nil {
					return cli.Exit(cli.Runtime, fmt.Errorf("cannot listen for metrics (--metrics-listen): %w", err))
				}
				addrs.metrics = ln.Addr().String()
				scrape.listener = scrape.conns.Listener(ln)
				return nil
			},
			run:   scrape.serve,
			close: scrape.drain,
		},
	)
	if err == nil {
		switch {
		case cfg.InsecureSkipSignature:
			logger.Warn("--insecure-skip-signature: callbacks are not checked for Twilio's signature; never run like this in production", "listen", cfg.Listen)
		case token == "":
			logger.Warn("TWILIO_AUTH_TOKEN is not set: accepting unsigned callbacks, which is allowed only because --listen is a loopback address", "listen", cfg.Listen)
		}
		if rest := rl.Current().Engine.Set().RESTActions(); len(rest) > 0 && !cfg.Credentials.REST() {
			names := make([]string, len(rest))
			for i, a := range rest {
				names[i] = a.Name
			}
			logger.Warn("TWILIO_ACCOUNT_SID is not set, so the rules' REST decisions are logged as dry-run and dropped; set it with TWILIO_AUTH_TOKEN, or with TWILIO_API_KEY and TWILIO_API_SECRET, to send them",
				"rest_rules", names)
		}
		logger.Info("listening", "callback", addrs.callback, "admin", orOff(addrs.admin), "metrics", orOff(addrs.metrics),
			"callback_paths", cfg.CallbackPaths, "events_path", orOff(cfg.EventsPath), "signed", token != "", "revision", rl.Current().Revision(), "version", version())
		if h.ready != nil {
			h.ready(addrs)
		}
		select {
		case <-ctx.Done():
			if cfg.ShutdownDelay > 0 {
				delayShutdown(cfg.ShutdownDelay, srv, callbacks, logger)
			}
			logger.Info("shutting down: finishing callbacks in flight")
		case err = <-g.failed:
			logger.Error("shutting down", "error", err)
			err = cli.Exit(cli.Runtime, nil) // said just now
		}
	} else {
		err = cannotStart(logger, err)
	}
	for _, cerr := range g.stop() {
		logger.Error("stopping", "error", cerr)
	}
	if err == nil {
		logger.Info("stopped")
	}
	sink.Flush()
	return err
}

// openOutbox opens the REST outbox that --outbox names, the embedded one in --state-dir or
// the shared one in PostgreSQL (which writes nothing to --state-dir: a pod may have no state
// volume), with the twilio-go sender when there are REST credentials and as a dry run
// without them.
func openOutbox(cfg *config.Serve, logger *slog.Logger, reg prometheus.Registerer) (outbox.Outbox, error) {
	var sender outbox.Sender
	if cfg.Credentials.REST() {
		s, err := taskrouter.NewSender(taskrouter.Config{Credentials: cfg.Credentials, BaseURL: cfg.TwilioBaseURL})
		if err != nil {
			return nil, cli.Exit(cli.Usage, err)
		}
		sender = s
	}
	metrics := outbox.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return nil, err
	}
	carrier := outbox.NewCarrier(outbox.CarrierOptions{Sender: sender, Logger: logger, Metrics: metrics})
	var ob outbox.Outbox
	if cfg.Outbox == config.OutboxBbolt {
		bolt, err := boltdb.Open(cfg.StateDir, boltdb.Options{Carrier: carrier, Concurrency: cfg.RESTConcurrency})
		if err != nil {
			return nil, cli.Exit(cli.Runtime, fmt.Errorf("state dir %s: %w", cfg.StateDir, err))
		}
		ob = bolt
	} else {
		// A database that cannot be reached yet is not an error: the outbox starts unready
		// and recovers by itself (see postgres.Open).
		logger.Info("outbox: the shared one in PostgreSQL", "url", postgres.Redacted(cfg.Outbox))
		pg, err := postgres.Open(cfg.Outbox, postgres.Options{Carrier: carrier, Concurrency: cfg.RESTConcurrency})
		if err != nil {
			return nil, cli.Exit(cli.Runtime, fmt.Errorf("--outbox %s: %w", postgres.Redacted(cfg.Outbox), err))
		}
		ob = pg
	}
	if err := outbox.RegisterBacklog(reg, ob); err != nil {
		ob.Close()
		return nil, err
	}
	return ob, nil
}

// logHandler makes the slog handler for --log-format and --log-level.
func logHandler(format string, level slog.Level, w io.Writer) slog.Handler {
	if format == "text" {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	}
	return logbuf.NewJSONHandlerAt(w, level) // slog's JSON lines, written faster: one per callback
}

func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}

// cannotStart logs why serve cannot start, in the log's format, so that a log pipeline
// reads it like every other line: one error line for each problem (each FILE:LINE:COL line
// of a bad rules file, each golden case a --reload-cases gate refused them for), with the
// exit code. It returns that exit code, the reason said.
func cannotStart(logger *slog.Logger, err error) error {
	code := cli.Runtime
	if ee, ok := errors.AsType[*cli.ExitError](err); ok {
		code = ee.Code
		if ee.Err == nil {
			return err // said already
		}
		err = ee.Err
	}
	var lines []string
	if _, ok := errors.AsType[*reload.GateError](err); ok {
		lines = append([]string{"the rules fail their --reload-cases:"}, rules.ErrorLines(errors.Unwrap(err))...)
	} else if _, ok := errors.AsType[rules.Errors](err); ok {
		lines = rules.ErrorLines(err)
	} else {
		lines = strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	}
	for _, l := range lines {
		logger.Error("reservist cannot start", "error", l, "exit_code", code)
	}
	return cli.Exit(code, nil)
}

// delayShutdown is --shutdown-delay: /readyz answers 503 at once while callbacks are still
// answered, so that load balancers take the pod out before it stops accepting. Keep-alive is
// turned off, so that clients holding a connection open a new one, elsewhere. A second
// SIGTERM or SIGINT ends the delay early. It is watched for from before readiness turns: a
// second signal within the microseconds between the first and that is taken by main's
// signal context, which has already fired, and does not end the delay.
func delayShutdown(delay time.Duration, srv *server.Server, callbacks *listener, logger *slog.Logger) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(term)
	// Readiness turns only once a second signal would be seen.
	srv.ShuttingDown()
	callbacks.SetKeepAlivesEnabled(false)
	logger.Info("shutting down: /readyz answers 503 while callbacks are still answered; a second SIGTERM or SIGINT ends the wait",
		"shutdown_delay_seconds", delay.Seconds())
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case sig := <-term:
		logger.Info("shutdown delay cut short", "signal", sig.String())
	}
}

// casesGate makes the --reload-cases check: a rules file, at start or on reload, serves only
// if it passes every golden case in the directories. The cases are read each time, so that
// they can change together with the rules.
func casesGate(dirs []string) func(*engine.Engine) error {
	if len(dirs) == 0 {
		return nil
	}
	return func(e *engine.Engine) error {
		cs, err := cases.Load(dirs...)
		if err != nil {
			return fmt.Errorf("read --reload-cases: %w", err)
		}
		return cases.Run(e, cs, nil).Err()
	}
}

// listener is an http.Server with the listener it serves.
type listener struct {
	*http.Server
	listener net.Listener // nil: not listening
	conns    *server.Conns
	grace    time.Duration
}

// httpServer is a listener with reservist's timeouts and connection limit; budget is the
// callbacks' response budget, 0 for the admin listener.
func httpServer(budget, idle time.Duration, conns *server.Conns, logger *slog.Logger) *listener {
	s := &http.Server{
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout + budget + writeSlack,
		IdleTimeout:       idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         conns.ConnState,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Requests cannot outlive the write timeout by much; the grace only bounds a handler
	// that is stuck for another reason.
	return &listener{Server: s, conns: conns, grace: s.WriteTimeout + time.Second}
}

func (l *listener) serve(context.Context) error {
	if l.listener == nil {
		return nil
	}
	if err := l.Serve(l.listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// drain stops accepting and lets the requests in flight finish.
func (l *listener) drain() error {
	if l.listener == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.grace)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		return fmt.Errorf("requests still in flight were cut off: %w", err)
	}
	return nil
}

// workbench is what serve adds for rule authors: the playground's recent callbacks and
// --capture-dir.
type workbench struct {
	recent    *playground.Recent // nil when not kept
	recentOff string             // why not
	capture   *cases.Capturer    // nil without --capture-dir
	on        bool               // the admin listener is on
}

// newWorkbench starts capture if asked for. Recent callbacks are kept only while the admin
// listener is on loopback: they hold attributes (personal data), and a non-loopback admin
// listener (a pod's, for Prometheus) is reachable by more people than the operators.
func newWorkbench(cfg *config.Serve, reg prometheus.Registerer, logger *slog.Logger) (workbench, error) {
	w := workbench{on: cfg.AdminListen != ""}
	switch loopback, _ := config.IsLoopback(cfg.AdminListen); {
	case !w.on:
		// No admin listener, no page to show them on.
	case loopback:
		w.recent = playground.NewRecent()
	default:
		w.recentOff = "Recent callbacks are kept only while --admin-listen is a loopback address: they hold attributes, and this listener can be reached from the network. Paste a callback instead."
	}
	if cfg.CaptureDir != "" {
		w.capture = cases.NewCapturer(cases.CaptureOptions{Dir: cfg.CaptureDir, Max: cfg.CaptureMax, Redact: cfg.CaptureRedact, Logger: logger})
		if err := w.capture.Register(reg); err != nil {
			w.capture.Close()
			return w, err
		}
		logger.Info("capturing callbacks as cases", "dir", cfg.CaptureDir, "max", cfg.CaptureMax, "redact", cfg.CaptureRedact)
	}
	return w, nil
}

// playground is the admin listener's workbench page; nil without an admin listener.
func (w *workbench) playground(rl reload.Source, cfg *config.Serve, logger *slog.Logger, tracker *outcomes.Tracker) *playground.Playground {
	if !w.on {
		return nil
	}
	dirs, gate := cfg.ReloadCases, len(cfg.ReloadCases) > 0
	if !gate {
		// Without --reload-cases, the cases where reservist test looks by default.
		if beside := filepath.Join(filepath.Dir(cfg.Rules), "cases"); isDir(beside) {
			dirs = []string{beside}
		}
	}
	return playground.New(playground.Options{Rules: rl, Recent: w.recent, RecentOff: w.recentOff, CaseDirs: dirs, Gate: gate, Logger: logger, Now: wallClock, Outcomes: tracker})
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// observe is server.Options.Observe: nil when nothing watches callbacks, so that the
// callback path does not even make the call.
func (w *workbench) observe() func(url.Values, *engine.Decision) {
	switch {
	case w.recent != nil && w.capture != nil:
		return func(p url.Values, d *engine.Decision) {
			w.recent.Observe(p, d)
			w.capture.Observe(p, d)
		}
	case w.recent != nil:
		return w.recent.Observe
	case w.capture != nil:
		return w.capture.Observe
	}
	return nil
}

// close writes the callbacks still queued for capture.
func (w *workbench) close() {
	if w.capture != nil {
		w.capture.Close()
	}
}

// component is one part of a running serve. open acquires what it needs; run, when set,
// works until its context ends (a listener serves until it is drained instead); close
// releases what open acquired. ready, when set, is closed once run is under way.
type component struct {
	name  string
	open  func() error
	run   func(context.Context) error
	close func() error
	ready <-chan struct{}
}

// group runs serve's components: started in order, stopped in reverse order, so that each
// stops while what it relies on still works (the listeners drain while the outbox can still
// take decisions; the outbox stops before the log is flushed).
type group struct {
	started []*started
	failed  chan error // a run that ended early: serve stops
}

type started struct {
	component
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned; nil without run
}

// start opens and runs each component in turn. When one fails to open, it stops those
// started before it and returns the error.
func (g *group) start(cs ...component) error {
	g.failed = make(chan error, len(cs))
	for _, c := range cs {
		if c.open != nil {
			if err := c.open(); err != nil {
				if _, ok := errors.AsType[*cli.ExitError](err); !ok {
					err = fmt.Errorf("%s: %w", c.name, err)
				}
				return err
			}
		}
		s := &started{component: c}
		g.started = append(g.started, s)
		if c.run == nil {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go func() {
			defer close(s.done)
			if err := c.run(ctx); err != nil {
				g.failed <- fmt.Errorf("%s: %w", c.name, err)
			}
		}()
		if c.ready != nil {
			select {
			case <-c.ready:
			case <-s.done:
			}
		}
	}
	return nil
}

// stop stops the started components in reverse order and returns what went wrong.
func (g *group) stop() []error {
	var errs []error
	for i := len(g.started) - 1; i >= 0; i-- {
		s := g.started[i]
		if s.cancel != nil {
			s.cancel()
		}
		if s.close != nil {
			if err := s.close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			}
		}
		if s.done != nil {
			<-s.done
		}
	}
	g.started = nil
	return errs
}
