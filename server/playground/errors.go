package playground

import (
	"net/http"

	"github.com/reservist/reservist/server/internal/respond"
)

// maxBody bounds a request body, as the callback listener bounds a callback's.
const maxBody = 1 << 20

// The errors a caller is told about; a request error that names what is wrong in the
// caller's body is a respond.BadRequest instead.
var (
	errTooLarge  = respond.New(http.StatusRequestEntityTooLarge, "request body is over 1 MiB")
	errNotJSON   = respond.New(http.StatusUnsupportedMediaType, "the body must be JSON (Content-Type: application/json)")
	errNotObject = respond.New(http.StatusBadRequest, "the body must be a JSON object")
)
