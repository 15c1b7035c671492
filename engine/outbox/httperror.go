package outbox

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// HTTPError is a REST call that TaskRouter answered with an error status.
type HTTPError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code, Message and MoreInfo come from Twilio's JSON error body; Code is 0 when the body
	// was not Twilio's (a proxy's error page, say).
	Code     int
	Message  string
	MoreInfo string
	// RetryAfter is the Retry-After header as a duration, 0 when absent.
	RetryAfter time.Duration
}

// Error says what TaskRouter answered, with Twilio's code when there is one.
func (e *HTTPError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("taskrouter answered %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("taskrouter answered %d: twilio error %d: %s", e.StatusCode, e.Code, e.Message)
}

// ErrInvalidParams is wrapped by Send errors for actions whose parameters cannot be sent at
// all; they are not retried.
var ErrInvalidParams = errors.New("invalid REST parameters")

// Verdict is what a Send error means for the action.
type Verdict int

// The verdicts of Judge.
const (
	Retry Verdict = iota // worth another attempt: a network error, 429 or 5xx
	Final                // refused for good: other 4xx, invalid parameters
)

// Judge says what a Send error means.
func Judge(err error) Verdict {
	if errors.Is(err, ErrInvalidParams) {
		return Final
	}
	var he *HTTPError
	if errors.As(err, &he) {
		if he.StatusCode == http.StatusTooManyRequests || he.StatusCode >= 500 {
			return Retry
		}
		return Final
	}
	return Retry // a network error
}
