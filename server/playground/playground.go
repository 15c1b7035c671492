// Package playground is the rule authors' workbench on the admin listener: a page at / that
// shows the active rules, decides a callback with them (step by step), and tries a draft of
// rules.yaml against that callback and the --reload-cases golden cases, side by side with
// the active rules. Behind the page are JSON endpoints for scripts: POST /decide, POST
// /draft, GET /recent, GET /cases (the golden cases, to load one into the callback form) and
// POST /case (a callback written as a .yaml case, to save).
//
// Every decision is made by the engine that serves TaskRouter (Engine.Explain); the page
// never decides anything itself, and nothing it does changes what serves. Attribute values
// sent to it or kept for it are shown to its caller only: they are never logged.
package playground

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/server/internal/respond"
)

// Options are what the playground needs.
type Options struct {
	Rules reload.Source
	// Recent keeps the last callbacks received; nil keeps none, and the page says so.
	Recent *Recent
	// RecentOff says why there is no Recent, for the page.
	RecentOff string
	// CaseDirs are the golden-case directories the page loads cases from and tries drafts
	// against: the --reload-cases ones, or else the cases/ beside the rules file.
	CaseDirs []string
	// Gate says that CaseDirs are --reload-cases: a draft that fails one of their cases
	// would be refused when the file is saved.
	Gate   bool
	Logger *slog.Logger
	// Now is the clock a callback without "at" or a usable Timestamp is decided by, as serve
	// decides one; time.Now when nil.
	Now func() time.Time
	// Outcomes, when set, gives each active rule's reservation outcomes since the rules were
	// loaded, for the rules table; nil leaves them out (Event callbacks are off).
	Outcomes *outcomes.Tracker
}

//go:embed assets
var assets embed.FS

// Playground holds the workbench's handlers; server/routes.go says where each is served.
type Playground struct {
	o      Options
	static fs.FS
	drafts chan struct{} // a slot per draft tried at once
}

// New returns the playground for o.
func New(o Options) *Playground {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	return &Playground{o: o, static: static, drafts: make(chan struct{}, maxDrafts)}
}

// Page is the workbench's page.
func (p *Playground) Page() http.Handler { return handlePage(p.o) }

// Static serves the page's script and style sheet, under a path with /static/ stripped.
func (p *Playground) Static() http.Handler { return handleStatic(p.static) }

// Recent lists the callbacks kept for the page.
func (p *Playground) Recent() http.Handler { return handleRecent(p.o.Recent, p.o.RecentOff) }

// Decide decides a callback with the active rules.
func (p *Playground) Decide() http.Handler { return handleDecide(p.o.Rules, p.o.Now) }

// Draft tries a draft of rules.yaml.
func (p *Playground) Draft() http.Handler {
	return handleDraft(p.o.Rules, p.o.CaseDirs, p.o.Gate, p.drafts, p.o.Now)
}

// Cases lists the golden cases of CaseDirs, to load one into the callback form.
func (p *Playground) Cases() http.Handler { return handleCases(p.o.CaseDirs, p.o.Gate) }

// SaveCase writes a callback as a .yaml case.
func (p *Playground) SaveCase() http.Handler { return handleSaveCase() }

// maxDrafts bounds the drafts tried at once: each parses up to 1 MiB of rules and decides
// every golden case twice, and the machine's cores belong to the callbacks first.
const maxDrafts = 2

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
		respond.JSON(w, http.StatusOK, out)
	})
}
