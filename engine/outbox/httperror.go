package outbox

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
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
	Retry      Verdict = iota // worth another attempt: a network error, 429 or 5xx
	Final                     // refused for good: other 4xx, invalid parameters
	NotPending                // the reservation is no longer pending: the action is superseded
)

// notPendingCodes are the Twilio error codes that say an instruction came for a reservation
// that is no longer pending (docs/outbox.md, "Superseded"): one per instruction.
var notPendingCodes = map[int]bool{
	40114: true, // call: the reservation must be pending
	40123: true, // redirect: the reservation must be pending
	40135: true, // dequeue: the reservation must be pending
	40136: true, // conference: the reservation must be pending
	40144: true, // conference: no longer pending (the caller hung up, or the task was canceled)
}

// codeInvalidParameter is Twilio's generic 400; TaskRouter answers a status update (accept,
// reject) of a reservation that is no longer pending with it, and says so in the message.
const codeInvalidParameter = 20001

// notPendingMessage matches the wordings TaskRouter uses with 20001 for a reservation that
// has left the pending state: "… is not currently in a Pending state", "… not in expected
// state [pending] …", "… is no longer pending".
var notPendingMessage = regexp.MustCompile(`(?i)\b(not|no longer)\b[^.]*\bpending\b`)

// Judge says what a Send error means.
func Judge(err error) Verdict {
	if errors.Is(err, ErrInvalidParams) {
		return Final
	}
	var he *HTTPError
	if errors.As(err, &he) {
		switch {
		case he.StatusCode == http.StatusTooManyRequests || he.StatusCode >= 500:
			return Retry
		case he.StatusCode == http.StatusBadRequest && notPending(he):
			return NotPending
		}
		return Final
	}
	return Retry // a network error
}

// notPending reports whether a 400 says the reservation is no longer pending.
func notPending(he *HTTPError) bool {
	return notPendingCodes[he.Code] || he.Code == codeInvalidParameter && notPendingMessage.MatchString(he.Message)
}
