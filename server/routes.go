package server

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reservist/reservist/server/internal/respond"
)

// Callbacks is the callback listener's handler: the callback paths, the events path,
// /healthz and /readyz.
func (s *Server) Callbacks() http.Handler {
	r := newRouter(s.o.Logger)
	r.Get("/healthz", handleHealthz().ServeHTTP)
	r.Get("/readyz", handleReadyz(s.o.Rules, s.o.Outbox, &s.shuttingDown).ServeHTTP)
	direct := callbackFirst{paths: map[string]bool{}, callback: respond.Recoverer(s.o.Logger)(s.callback), router: r}
	for _, p := range s.o.CallbackPaths {
		r.Handle(p, s.callback) // every method: the handler answers 405 itself, in the order of checks
		direct.paths[p] = true
	}
	if s.o.EventsPath != "" {
		r.Handle(s.o.EventsPath, s.events) // every method: the handler answers 405 itself
	}
	return direct
}

// Admin is the admin listener's handler: metrics, reloads, the rules status, the rules
// file's JSON Schema and the playground. Everything on it is unauthenticated, so every route answers only requests
// addressed to localhost or an IP address, and its POST endpoints refuse cross-site ones
// (see middleware.go).
func (s *Server) Admin() http.Handler {
	r := newRouter(s.o.Logger)
	r.Use(localOnly, sameOrigin)
	if s.o.Gatherer != nil {
		r.Handle("/metrics", s.metricsHandler())
	}
	r.Post("/-/reload", handleReload(s.o.Rules).ServeHTTP)
	r.Get("/rules", handleRules(s.o.Rules, s.o.Outcomes).ServeHTTP)
	r.Get("/schema.json", handleSchema().ServeHTTP)
	if pg := s.o.Playground; pg != nil {
		r.Group(func(r chi.Router) {
			r.Use(noStore)
			r.Get("/", pg.Page().ServeHTTP)
			r.Handle("/static/*", http.StripPrefix("/static/", pg.Static()))
			r.Get("/recent", pg.Recent().ServeHTTP)
			r.Post("/decide", pg.Decide().ServeHTTP)
			r.Post("/draft", pg.Draft().ServeHTTP)
			r.Get("/cases", pg.Cases().ServeHTTP)
			r.Post("/case", pg.SaveCase().ServeHTTP)
		})
	}
	return r
}

// Metrics is the --metrics-listen listener's handler: GET /metrics and nothing else, so that
// Prometheus can scrape from outside while the admin listener stays on loopback. Metrics
// hold no secrets and no attributes, so it takes requests addressed to any host.
func (s *Server) Metrics() http.Handler {
	r := newRouter(s.o.Logger)
	if s.o.Gatherer != nil {
		r.Get("/metrics", s.metricsHandler().ServeHTTP)
	}
	return r
}

// newRouter is a router whose own answers (404, 405, a panic) are JSON errors.
func newRouter(logger *slog.Logger) *chi.Mux {
	r := chi.NewRouter()
	r.Use(respond.Recoverer(logger))
	r.NotFound(respond.Handler(respond.ErrNotFound).ServeHTTP)
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) { methodNotAllowed(r, w, req) })
	return r
}

// methodNotAllowed answers 405 with the methods the path takes, in the Allow header and in
// the message.
func methodNotAllowed(r *chi.Mux, w http.ResponseWriter, req *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if r.Match(chi.NewRouteContext(), m, req.URL.Path) {
			allowed = append(allowed, m)
		}
	}
	list := strings.Join(allowed, ", ")
	w.Header().Set("Allow", list)
	respond.Err(w, respond.New(http.StatusMethodNotAllowed, "method not allowed: "+req.URL.Path+" takes "+list))
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelError)})
}
