// Package playground is the rule authors' workbench on the admin listener: a page at / that
// shows the active rules, decides a callback with them (step by step), and tries a draft of
// rules.yaml against that callback and the --reload-cases golden cases, side by side with
// the active rules. Behind the page are JSON endpoints for scripts: POST /decide, POST
// /draft and GET /recent.
//
// Every decision is made by the engine that serves TaskRouter (Engine.Explain); the page
// never decides anything itself, and nothing it does changes what serves. Attribute values
// sent to it or kept for it are shown to its caller only: they are never logged.
package playground

import (
	"embed"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/reservist/reservist/server/reload"
)

// Rules is what serves the rules: *reload.Reloader.
type Rules interface {
	Current() *reload.Rules
	Status() reload.Status
}

// Options are what the playground needs.
type Options struct {
	Rules Rules
	// Recent keeps the last callbacks received; nil keeps none, and the page says so.
	Recent *Recent
	// RecentOff says why there is no Recent, for the page.
	RecentOff string
	// CaseDirs are the --reload-cases directories a draft is tried against.
	CaseDirs []string
	// Next serves every path the playground does not: the rest of the admin listener.
	// nil answers them 404.
	Next   http.Handler
	Logger *slog.Logger
}

//go:embed assets
var assets embed.FS

// New returns the admin listener's handler with the playground's routes, passing every
// other request to o.Next.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Next == nil {
		o.Next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { respondError(w, errNotFound) })
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	drafts := make(chan struct{}, maxDrafts)

	r := chi.NewRouter()
	r.NotFound(o.Next.ServeHTTP)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { respondError(w, errMethod) })
	r.Group(func(r chi.Router) {
		r.Use(recoverer(o.Logger), localOnly)
		r.Get("/", handlePage(o).ServeHTTP)
		r.Handle("/static/*", http.StripPrefix("/static/", handleStatic(static)))
		r.Get("/recent", handleRecent(o.Recent, o.RecentOff).ServeHTTP)
		r.Post("/decide", handleDecide(o.Rules).ServeHTTP)
		r.Post("/draft", handleDraft(o.Rules, o.CaseDirs, drafts).ServeHTTP)
	})
	return r
}

// maxDrafts bounds the drafts tried at once: each parses up to 1 MiB of rules and decides
// every golden case twice, and the machine's cores belong to the callbacks first.
const maxDrafts = 2

// localOnly refuses requests addressed to a host name other than localhost. The playground
// shows callbacks' attributes; a web page could otherwise read it from the operator's
// browser by pointing its own name at 127.0.0.1 (DNS rebinding). Requests addressed to an IP
// address or to localhost cannot come from such a page.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		lower := strings.ToLower(host)
		if net.ParseIP(host) == nil && lower != "localhost" && !strings.HasSuffix(lower, ".localhost") {
			respondError(w, errHost)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleStatic serves the page's script and style sheet from the binary.
func handleStatic(static fs.FS) http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache") // a new binary brings new files
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// handleRecent lists the callbacks kept for the page, newest first.
func handleRecent(recent *Recent, off string) http.Handler {
	type list struct {
		Kept      bool             `json:"kept"`
		Why       string           `json:"why,omitempty"` // why none are kept
		Max       int              `json:"max"`
		Callbacks []RecentCallback `json:"callbacks"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := list{Kept: recent != nil, Max: RecentMax, Callbacks: []RecentCallback{}}
		if recent != nil {
			out.Callbacks = recent.List()
		} else {
			out.Why = off
		}
		respond(w, http.StatusOK, out)
	})
}
