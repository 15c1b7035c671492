package playground

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
)

// maxBody bounds a request body, as the callback listener bounds a callback's.
const maxBody = 1 << 20

// The errors a caller is told about, and their one table of status codes. A request error
// that names what is wrong in the caller's body is a *requestError instead.
var (
	errNotFound  = errors.New("not found")
	errMethod    = errors.New("method not allowed")
	errTooLarge  = errors.New("request body is over 1 MiB")
	errNotJSON   = errors.New("the body must be JSON (Content-Type: application/json)")
	errNotObject = errors.New("the body must be a JSON object")
	errHost      = errors.New("the playground answers only requests addressed to localhost or an IP address, so that no web page can read it by DNS rebinding")
	errInternal  = errors.New("internal error")
)

var statusOf = map[error]int{
	errNotFound:  http.StatusNotFound,
	errMethod:    http.StatusMethodNotAllowed,
	errTooLarge:  http.StatusRequestEntityTooLarge,
	errNotJSON:   http.StatusUnsupportedMediaType,
	errNotObject: http.StatusBadRequest,
	errHost:      http.StatusForbidden,
	errInternal:  http.StatusInternalServerError,
}

// requestError is a 400 whose message says what in the request body is wrong.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{msg} }

// respondError answers err as {"error": message} with its status; an error not meant for
// the caller answers 500 "internal error".
func respondError(w http.ResponseWriter, err error) {
	status, ok := statusOf[err]
	var re *requestError
	switch {
	case ok:
	case errors.As(err, &re):
		status = http.StatusBadRequest
	default:
		err, status = errInternal, http.StatusInternalServerError
	}
	respond(w, status, struct {
		Error string `json:"error"`
	}{err.Error()})
}

// respond writes v as a JSON body. HTML is not escaped: answers must show exactly as
// TaskRouter gets them (a URL's & stays &), and the page puts text into the document only
// as text. The JSON content type and nosniff keep a browser from reading it as HTML.
func respond(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":"internal error"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store") // attributes
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// recoverer keeps a bug in a playground handler to one 500, logged without the request's
// content (attributes, rules).
func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// A run-time error's text is the runtime's own; any other value may quote
				// what was sent, so only its type is logged.
				what := fmt.Sprintf("%T", v)
				if re, ok := v.(runtime.Error); ok {
					what = re.Error()
				}
				logger.Error("panic in playground handler", "method", r.Method, "path", r.URL.Path, "panic", what)
				respondError(w, errInternal)
			}()
			next.ServeHTTP(w, r)
		})
	}
}
