package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// The errors a caller can be told about. Their text is the public message; anything else
// answers 500 "internal error" so that internal detail never reaches a caller.
var (
	errMethod      = errors.New("method not allowed: the callback takes POST (or GET)")
	errTooLarge    = errors.New("request body is over 1 MiB")
	errNotForm     = errors.New("the body must be application/x-www-form-urlencoded")
	errBadForm     = errors.New("the body does not parse as a form")
	errBadQuery    = errors.New("the query string does not parse as a form")
	errSignature   = errors.New("X-Twilio-Signature is missing or does not match")
	errNoSids      = errors.New("a REST decision needs the callback's ReservationSid, TaskSid and WorkspaceSid")
	errUnavailable = errors.New("the decision cannot be kept for later; use the fallback URL")
	errNotFound    = errors.New("not found")
	errInternal    = errors.New("internal error")
)

// statusOf is the one table from errors to status codes.
var statusOf = map[error]int{
	errMethod:      http.StatusMethodNotAllowed,
	errTooLarge:    http.StatusRequestEntityTooLarge,
	errNotForm:     http.StatusBadRequest,
	errBadForm:     http.StatusBadRequest,
	errBadQuery:    http.StatusBadRequest,
	errSignature:   http.StatusForbidden,
	errUnavailable: http.StatusServiceUnavailable,
	errNotFound:    http.StatusNotFound,
	errInternal:    http.StatusInternalServerError,
}

// Header values shared by every response; net/http only reads them.
var (
	jsonType = []string{"application/json"}
	noSniff  = []string{"nosniff"}
)

// respondError answers with err's status and a JSON body {"error": message}.
func respondError(w http.ResponseWriter, err error) {
	status, ok := statusOf[err]
	if !ok {
		err, status = errInternal, http.StatusInternalServerError
	}
	respond(w, status, struct {
		Error string `json:"error"`
	}{err.Error()})
}

// respond encodes v as the JSON body of a response. It is the one JSON encoder of the
// package; the callback's own answers are already JSON and go through respondJSON.
func respond(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are encoded here; failing is a programming error.
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	respondJSON(w, status, append(body, '\n'))
}

// respondJSON writes a body that is already JSON. net/http adds the Content-Length of a
// body this small when the handler returns, without the allocations of setting it here; a
// handler that flushes sets it first.
func respondJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	w.Write(body)
}

func handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respondError(w, errNotFound)
	})
}

func handleMethodNotAllowed() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respondError(w, errMethod)
	})
}

// recoverer is the last line against a panic in a handler: it logs the panic without the
// request's content and answers 500 if nothing was answered yet. Handlers do not count on
// it; it exists so that a bug costs one request, not the process.
func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v) // net/http's own way to abort a response
				}
				logger.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v)
				respondError(w, errInternal)
			}()
			next.ServeHTTP(w, r)
		})
	}
}
