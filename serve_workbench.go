package main

import (
	"log/slog"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reservist/reservist/engine"
	"github.com/reservist/reservist/server/capture"
	"github.com/reservist/reservist/server/playground"
)

// workbench is what serve adds for rule authors: the admin listener's playground, the
// recent callbacks it offers, and --capture-dir.
type workbench struct {
	recent    *playground.Recent // nil when not kept
	recentOff string             // why not
	capture   *capture.Capturer  // nil without --capture-dir
}

// newWorkbench starts capture if asked for. Recent callbacks are kept only while the admin
// listener is on loopback: they hold attributes (personal data), and a non-loopback admin
// listener (a pod's, for Prometheus) is reachable by more people than the operators.
func newWorkbench(cfg *serveConfig, reg prometheus.Registerer, logger *slog.Logger) (*workbench, error) {
	w := &workbench{}
	switch loopback, _ := isLoopback(cfg.adminListen); {
	case cfg.adminListen == "":
		// No admin listener, no page to show them on.
	case loopback:
		w.recent = playground.NewRecent()
	default:
		w.recentOff = "Recent callbacks are kept only while --admin-listen is a loopback address: they hold attributes, and this listener can be reached from the network. Paste a callback instead."
	}
	if cfg.captureDir != "" {
		w.capture = capture.New(capture.Options{Dir: cfg.captureDir, Max: cfg.captureMax, Redact: cfg.captureRedact, Logger: logger})
		if err := w.capture.Register(reg); err != nil {
			w.capture.Close()
			return nil, err
		}
		logger.Info("capturing callbacks as cases", "dir", cfg.captureDir, "max", cfg.captureMax, "redact", cfg.captureRedact)
	}
	return w, nil
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

// admin puts the playground in front of the admin listener's other routes.
func (w *workbench) admin(next http.Handler, rl playground.Rules, cfg *serveConfig, logger *slog.Logger) http.Handler {
	return playground.New(playground.Options{
		Rules:     rl,
		Recent:    w.recent,
		RecentOff: w.recentOff,
		CaseDirs:  cfg.reloadCases,
		Next:      next,
		Logger:    logger,
	})
}

// close writes the callbacks still queued for capture; after the listeners have drained.
func (w *workbench) close() {
	if w.capture != nil {
		w.capture.Close()
	}
}
