// Package respond writes reservist's JSON responses: the one encoder and the one way of
// answering an error, for every listener and the playground.
package respond

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
)

// Error is an error whose text is meant for the caller, with the status it answers. Any
// other error answers 500 "internal error", so that internal detail never reaches a caller.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// New returns an Error: the table of a package's answers is its declarations of these.
func New(status int, msg string) *Error { return &Error{Status: status, Msg: msg} }

// BadRequest is a 400 whose message says what in the request is wrong.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// Errors every handler may answer.
var (
	ErrNotFound = New(http.StatusNotFound, "not found")
	ErrInternal = New(http.StatusInternalServerError, "internal error")
)

// StatusOf is the status err answers.
func StatusOf(err error) int {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Status
	}
	return http.StatusInternalServerError
}

// Header values shared by every response; net/http only reads them.
var (
	jsonType = []string{"application/json"}
	noSniff  = []string{"nosniff"}
)

// JSON encodes v as the JSON body of a response. HTML is not escaped: answers show exactly
// what TaskRouter gets (a URL's & stays &), and pages put text into documents only as text;
// the content type and nosniff keep a browser from reading a body as HTML.
func JSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only the packages' own response types are encoded: failing is a programming error.
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":"internal error"}` + "\n")
	}
	Raw(w, status, b.Bytes())
}

// Raw writes a body that is JSON already, such as a callback's answer. net/http adds the
// Content-Length of a body this small when the handler returns, without the allocations of
// setting it here; a handler that flushes sets it first.
func Raw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	w.Write(body)
}

// Err answers err as {"error": message} with its status; an error that is not an *Error
// answers 500 "internal error".
func Err(w http.ResponseWriter, err error) {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		e = ErrInternal
	}
	JSON(w, e.Status, struct {
		Error string `json:"error"`
	}{e.Msg})
}

// Handler answers every request with err: for not-found and method-not-allowed routes.
func Handler(err error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { Err(w, err) })
}

// Recoverer is the last line against a panic in a handler: it logs the panic without the
// request's content and answers 500 if nothing was answered yet. Handlers do not count on
// it; it exists so that a bug costs one request, not the process.
func Recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
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
				// A run-time error's text is the runtime's own; any other value may quote
				// what was sent (attributes, rules), so only its type is logged.
				what := fmt.Sprintf("%T", v)
				if re, ok := v.(runtime.Error); ok {
					what = re.Error()
				}
				logger.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", what)
				Err(w, ErrInternal)
			}()
			next.ServeHTTP(w, r)
		})
	}
}
