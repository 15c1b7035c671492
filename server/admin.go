package server

import (
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/reservist/reservist/engine/outbox"
	"github.com/reservist/reservist/engine/outcomes"
	"github.com/reservist/reservist/engine/reload"
	"github.com/reservist/reservist/rules"
	"github.com/reservist/reservist/rules/schema"
	"github.com/reservist/reservist/server/internal/respond"
)

func handleHealthz() http.Handler {
	body := []byte(`{"status":"ok"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Raw(w, http.StatusOK, body)
	})
}

// sharedOutbox is an outbox that every replica shares (the PostgreSQL one): /readyz names
// its state even while it is fine, since it depends on a database outside the pod.
type sharedOutbox interface{ Shared() bool }

// handleReadyz is 200 once rules are loaded and the outbox is open, until shutting down is
// set. Stale rules and refused REST credentials show in the body but keep it 200:
// synchronous answers still work.
func handleReadyz(rs reload.Source, ob outbox.Outbox, shuttingDown *atomic.Bool) http.Handler {
	type readiness struct {
		Status string `json:"status"` // "ok" or "unavailable"
		Rules  string `json:"rules"`  // "ok", "stale" or "not loaded"
		// Outbox is "not open", or "unavailable" while it cannot store actions; a shared
		// outbox says "ok" or "unreachable" (its database).
		Outbox string `json:"outbox,omitempty"`
		Twilio string `json:"twilio,omitempty"` // "unauthorized" once REST calls were refused
		// ShuttingDown is set from SIGTERM on: callbacks are still answered during
		// --shutdown-delay, but load balancers should send them elsewhere.
		ShuttingDown bool `json:"shutting_down,omitempty"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, status := readiness{Status: "ok", Rules: "ok"}, http.StatusOK
		switch {
		case rs == nil || rs.Current() == nil:
			b.Rules = "not loaded"
			b.Status, status = "unavailable", http.StatusServiceUnavailable
		case rs.Status().Stale:
			b.Rules = "stale"
		}
		if ob == nil {
			b.Outbox = "not open"
			b.Status, status = "unavailable", http.StatusServiceUnavailable
		} else if err := ob.Ready(); err != nil {
			b.Outbox = "unavailable"
			if errors.Is(err, outbox.ErrUnreachable) {
				b.Outbox = "unreachable"
			}
			b.Status, status = "unavailable", http.StatusServiceUnavailable
		} else if s, ok := ob.(sharedOutbox); ok && s.Shared() {
			b.Outbox = "ok"
		}
		if ob != nil && ob.Unauthorized() {
			b.Twilio = "unauthorized"
		}
		if shuttingDown.Load() {
			b.ShuttingDown = true
			b.Status, status = "unavailable", http.StatusServiceUnavailable
		}
		respond.JSON(w, status, b)
	})
}

// handleReload reloads the rules now: 200 with the revision that serves, or 400 with every
// error while the previous rules keep serving.
func handleReload(rs reload.Source) http.Handler {
	type reloaded struct {
		Revision string `json:"revision"`
	}
	type failed struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rs.Reload("api"); err != nil {
			// The admin listener's callers are the operators who edit the file: they get
			// every FILE:LINE:COL line.
			respond.JSON(w, http.StatusBadRequest, failed{
				Error:  "the rules were not reloaded; the previous rules keep serving",
				Errors: rules.ErrorLines(err),
			})
			return
		}
		respond.JSON(w, http.StatusOK, reloaded{Revision: rs.Current().Revision()})
	})
}

// handleRules reports what serves: the file, its revision, when it loaded, why the last
// reload failed, how many callbacks each rule decided and how their reservations ended.
func handleRules(rs reload.Source, tracker *outcomes.Tracker) http.Handler {
	type status struct {
		Path          string               `json:"path"`
		Revision      string               `json:"revision"`
		LoadedAt      time.Time            `json:"loaded_at"`
		Stale         bool                 `json:"stale"`
		LastError     []string             `json:"last_error,omitempty"`
		LastAttemptAt time.Time            `json:"last_attempt_at"`
		Rules         []reload.RuleMatches `json:"rules"`
		// Outcomes are the reservation outcomes counted since these rules were loaded, by
		// the name of the rule that decided them; absent while Event callbacks are off.
		Outcomes map[string]outcomes.Counts `json:"outcomes,omitzero"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, st := rs.Current(), rs.Status()
		out := status{
			Path:          st.Path,
			Revision:      cur.Revision(), // of the rules counted below, even mid-reload
			LoadedAt:      cur.LoadedAt,
			Stale:         st.Stale,
			LastAttemptAt: st.LastAttemptAt,
			Rules:         cur.MatchCounts(),
		}
		if tracker != nil {
			out.Outcomes = tracker.SinceLoad(cur)
		}
		if st.LastError != nil {
			out.LastError = rules.ErrorLines(st.LastError)
		}
		respond.JSON(w, http.StatusOK, out)
	})
}

// handleSchema serves the JSON Schema of rules.yaml, as `reservist schema` prints it, so that
// an editor can name it by URL (# yaml-language-server: $schema=http://127.0.0.1:9090/schema.json).
func handleSchema() http.Handler {
	body, err := schema.JSON()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			respond.Err(w, respond.ErrInternal) // cannot happen: the schema is built from the binary's own tables
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}
