package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/engine/cases"
	"github.com/reservist/reservist/internal/gcheadroom"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/server"
	"github.com/reservist/reservist/server/logbuf"
	"github.com/reservist/reservist/server/outbox"
	"github.com/reservist/reservist/server/reload"
)

// Server timeouts. TaskRouter gives up on a callback after 5 seconds, so nothing longer is
// useful; they exist so that a stalled client cannot hold a connection and a goroutine.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 120 * time.Second // TaskRouter keeps connections alive between callbacks
	maxHeaderBytes    = 64 << 10
	// writeSlack is WriteTimeout beyond the read timeout and the response budget: time to
	// store a decision and write the answer.
	writeSlack = 5 * time.Second
	// gcHeadroom is how much the garbage collector lets reservist allocate between two
	// collections at least (GOGC in the environment turns it off): at full load on the
	// example rules the collector runs about a quarter as often as with GOGC=100 (0.8
	// against 2.9 times per 1,000 callbacks), for at most this much more memory.
	gcHeadroom = 8 << 20
)

// serve runs the callback server until ctx is cancelled (SIGTERM, SIGINT), then stops
// accepting, finishes the callbacks in flight, leaves pending REST actions in the outbox,
// flushes the log and returns nil.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServeConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	defer gcheadroom.Start(gcHeadroom)()
	sender, err := newSender(cfg)
	if err != nil {
		return exit(exitUsage, fmt.Errorf("twilio credentials: %w", err))
	}

	// The decision log is batched; everything else goes out at once, in order with it.
	sink := logbuf.New(stderr, 64<<10)
	logger := slog.New(logHandler(cfg.logFormat, sink.Direct()))
	decisions := slog.New(logHandler(cfg.logFormat, sink))
	flushCtx, stopFlushing := context.WithCancel(context.Background())
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		sink.Run(flushCtx, time.Second) // SPEC §6: at most a second of lines lost to SIGKILL
	}()
	defer func() { stopFlushing(); <-flushed }()

	for _, w := range cfg.warnings {
		logger.Warn(w)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	rl, err := reload.New(cfg.rules, reload.Options{Logger: logger, Gate: casesGate(cfg.reloadCases)})
	if err != nil {
		printRulesError(stderr, err)
		return exit(exitFailed, nil)
	}
	if err := rl.Register(reg); err != nil {
		return fmt.Errorf("register reload metrics: %w", err)
	}

	ob, err := openOutbox(cfg, sender, logger, reg)
	if err != nil {
		return exit(exitRuntime, fmt.Errorf("state dir %s: %w", cfg.stateDir, err))
	}
	defer ob.Close()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return exit(exitRuntime, fmt.Errorf("cannot listen for callbacks: %w", err))
	}
	defer ln.Close()
	var adminLn net.Listener
	if cfg.adminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.adminListen); err != nil {
			return exit(exitRuntime, fmt.Errorf("cannot listen for admin: %w", err))
		}
		defer adminLn.Close()
	}

	wb, err := newWorkbench(cfg, reg, logger)
	if err != nil {
		return fmt.Errorf("register capture metrics: %w", err)
	}
	defer wb.close()

	token := cfg.authToken
	switch {
	case cfg.insecureSkipSignature:
		token = ""
		logger.Warn("--insecure-skip-signature: callbacks are not checked for Twilio's signature; never run like this in production", "listen", cfg.listen)
	case token == "":
		logger.Warn("TWILIO_AUTH_TOKEN is not set: accepting unsigned callbacks, which is allowed only because --listen is a loopback address", "listen", cfg.listen)
	}
	if !cfg.haveREST() {
		logger.Warn("no Twilio REST credentials (TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN or TWILIO_API_KEY + TWILIO_API_SECRET): REST actions are logged as dry-run and dropped")
	}

	handler := server.New(server.Options{
		Rules:              rl,
		Outbox:             outboxAdapter{ob},
		CallbackPaths:      cfg.callbackPaths,
		AuthToken:          token,
		PublicURL:          cfg.publicURL,
		ResponseBudget:     cfg.responseBudget,
		ReservationTimeout: cfg.reservationTimeout,
		Logger:             logger,
		DecisionLog:        decisions,
		Metrics:            server.NewMetrics(reg),
		Observe:            wb.observe(),
	})
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	callbacks := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout + cfg.responseBudget + writeSlack,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errorLog,
	}
	servers := []*http.Server{callbacks}
	listeners := []net.Listener{ln}
	adminAddr := "off"
	if adminLn != nil {
		servers = append(servers, &http.Server{
			Handler:           wb.admin(server.NewAdmin(rl, reg, logger), rl, cfg, logger),
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      readTimeout + writeSlack,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          errorLog,
		})
		listeners = append(listeners, adminLn)
		adminAddr = adminLn.Addr().String()
	}

	// Background work that outlives no request: the outbox's sender, the rules watcher and
	// SIGHUP. It stops after the listeners have drained, so a callback in flight can still
	// hand its decision over.
	bg, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopBackground(); wg.Wait() }()
	wg.Go(func() {
		if err := ob.Run(bg); err != nil && !errors.Is(err, outbox.ErrClosed) {
			logger.Error("outbox stopped", "error", err)
		}
	})
	watching := make(chan struct{})
	wg.Go(func() {
		ready := func() { close(watching) }
		if err := rl.Watch(bg, reload.WatchOptions{Poll: cfg.reloadPoll, Ready: ready}); err != nil {
			logger.Error("rules are not watched for changes; reload with SIGHUP or POST /-/reload", "error", err)
			close(watching)
		}
	})
	<-watching // say "listening" only once no change to the rules can go unseen
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
				rl.Reload("SIGHUP") // logs its own outcome
			}
		}
	})

	failed := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			if err := s.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				failed <- err
			}
		}()
	}
	logger.Info("listening", "callback", ln.Addr().String(), "admin", adminAddr,
		"callback_paths", cfg.callbackPaths, "signed", token != "", "revision", rl.Current().Revision(), "version", version())

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down: finishing callbacks in flight")
	case serveErr = <-failed:
		logger.Error("listener failed; shutting down", "error", serveErr)
	}
	// Requests cannot outlive the write timeout by much; the grace only bounds a handler
	// that is stuck for another reason.
	grace, cancel := context.WithTimeout(context.Background(), callbacks.WriteTimeout+time.Second)
	defer cancel()
	var shut sync.WaitGroup
	for _, s := range servers {
		shut.Go(func() {
			if err := s.Shutdown(grace); err != nil {
				logger.Error("callbacks still in flight were cut off", "error", err)
			}
		})
	}
	shut.Wait()
	wb.close()
	stopBackground()
	wg.Wait()
	if err := ob.Close(); err != nil {
		logger.Error("closing the outbox", "error", err)
	}
	logger.Info("stopped")
	if serveErr != nil {
		return exit(exitRuntime, serveErr)
	}
	return nil
}

// logHandler makes the slog handler for --log-format.
func logHandler(format string, w io.Writer) slog.Handler {
	if format == "text" {
		return slog.NewTextHandler(w, nil)
	}
	return logbuf.NewJSONHandler(w) // slog's JSON lines, written faster: one per callback
}

// printRulesError prints why the rules cannot serve: every FILE:LINE:COL line of a bad file,
// or the golden cases a --reload-cases gate refused them for.
func printRulesError(w io.Writer, err error) {
	var re rules.Errors
	var ge *reload.GateError
	switch {
	case errors.As(err, &re):
		for _, d := range re {
			fmt.Fprintln(w, d)
		}
	case errors.As(err, &ge):
		fmt.Fprintln(w, "reservist: the rules fail their --reload-cases:")
		for _, l := range reload.ErrorLines(ge.Err) {
			fmt.Fprintln(w, l)
		}
	default:
		fmt.Fprintln(w, "reservist:", err)
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
